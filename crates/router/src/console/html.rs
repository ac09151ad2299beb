//! HTML for the console: escaping, the page frame with its navigation, security headers,
//! number formats, tables and SVG charts (drawn here, so no script or outside service is
//! needed to see them).

use super::Page;
use crate::auth::Caller;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use std::fmt::Write;

/// What pages may load: their own stylesheet and script, nothing inline, nothing elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `s` safe inside HTML text and attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one query-string value.
pub(super) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · smart-router</title>\
         <link rel=\"icon\" href=\"/console/assets/favicon.svg\">\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head>",
        escape(title)
    )
}

/// A page without navigation (sign-in, console off).
pub(super) fn bare(title: &str, body: &str) -> String {
    format!(
        "{}<body class=\"bare\"><main>{body}</main></body></html>",
        head(title)
    )
}

/// A page with the navigation `who` may use (`current` highlighted) and a sign-out button.
pub(super) fn layout(who: &Caller, current: Option<Page>, title: &str, body: &str) -> String {
    let mut nav = String::new();
    for p in Page::ALL.iter().filter(|p| p.allows(who)) {
        let here = if Some(*p) == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{}\"{here}>{}</a>", p.path(), p.title());
    }
    let role = if who.has(crate::auth::Role::Admin) {
        "admin"
    } else if who.has(crate::auth::Role::ReportAdmin) {
        "report-admin"
    } else {
        "metrics-admin"
    };
    format!(
        "{}<body><header><span class=\"brand\">smart-router</span><nav>{nav}</nav>\
         <form method=\"post\" action=\"/console/logout\" class=\"signout\">\
         <span class=\"who\">{} ({role})</span><button type=\"submit\">Sign out</button></form>\
         </header><main>{body}</main></body></html>",
        head(title),
        escape(&who.name)
    )
}

/// Adds the console's security headers to a response.
pub(super) fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// An HTML response with the security headers.
pub(super) fn respond(status: StatusCode, html: String) -> Response {
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(r)
}

/// A whole number with thousands separators.
pub(super) fn int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// US dollars, with more digits for small amounts.
pub(super) fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.6}")
    } else {
        format!("${v:.2}")
    }
}

/// Milliseconds, one decimal.
pub(super) fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// A table cell; `num` right-aligns it and gives it a sort value.
pub(super) fn cell(text: &str, num: Option<f64>) -> String {
    match num {
        Some(v) => format!("<td class=\"num\" data-v=\"{v}\">{}</td>", escape(text)),
        None => format!("<td>{}</td>", escape(text)),
    }
}

/// A message for a page whose data could not be read.
pub(super) fn unavailable(what: &str) -> String {
    format!(
        "<p class=\"error\" role=\"alert\">{} is unavailable: the usage store did not answer \
         (see the router's log).</p>",
        escape(what)
    )
}

/// A JSON value as HTML: objects as definition lists, arrays of objects as tables, other
/// arrays as comma-separated text (for the status documents the operator API serves).
pub(super) fn json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "—".into(),
        Value::String(s) => escape(s),
        Value::Object(m) => {
            let mut s = String::from("<dl>");
            for (k, v) in m {
                let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", escape(k), json(v));
            }
            s.push_str("</dl>");
            s
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let mut keys: Vec<&String> = Vec::new();
            for it in items.iter().filter_map(Value::as_object) {
                for k in it.keys() {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            let mut s = String::from("<table><thead><tr>");
            for k in &keys {
                let _ = write!(s, "<th>{}</th>", escape(k));
            }
            s.push_str("</tr></thead><tbody>");
            for it in items {
                s.push_str("<tr>");
                for k in &keys {
                    let _ = write!(s, "<td>{}</td>", json(&it[k.as_str()]));
                }
                s.push_str("</tr>");
            }
            s.push_str("</tbody></table>");
            s
        }
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) => items.iter().map(json).collect::<Vec<_>>().join(", "),
        other => escape(&other.to_string()),
    }
}

/// One series of a chart: its name, CSS class and a value per bucket.
pub(super) struct Series<'a> {
    pub(super) name: &'a str,
    pub(super) class: &'a str,
    pub(super) values: Vec<f64>,
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 180.0;
const PAD_L: f64 = 80.0;
const PAD_B: f64 = 22.0;

/// A bar chart (series side by side per bucket) or a line chart, as inline SVG with a title,
/// a y-axis maximum, x labels at the ends and a tooltip per point.
pub(super) fn chart(
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    bars: bool,
    fmt: fn(f64) -> String,
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| !v.is_nan())
        .fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max } else { 1.0 };
    let n = labels.len().max(1) as f64;
    let plot_w = CHART_W - PAD_L - 8.0;
    let plot_h = CHART_H - PAD_B - 8.0;
    let slot = plot_w / n;
    let y = |v: f64| 8.0 + plot_h - v / top * plot_h;
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" aria-label=\"{}\">\
         <line class=\"axis\" x1=\"{PAD_L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
         <text class=\"tick\" x=\"{tx}\" y=\"14\" text-anchor=\"end\">{}</text>\
         <text class=\"tick\" x=\"{tx}\" y=\"{b}\" text-anchor=\"end\">0</text>",
        escape(title),
        escape(title),
        escape(&fmt(max)),
        b = 8.0 + plot_h,
        r = CHART_W - 8.0,
        tx = PAD_L - 6.0,
    );
    let k = series.len().max(1) as f64;
    for (si, s) in series.iter().enumerate() {
        if bars {
            let w = (slot * 0.8 / k).max(1.0);
            for (i, v) in s.values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
                let x = PAD_L + i as f64 * slot + slot * 0.1 + si as f64 * w;
                let _ = write!(
                    svg,
                    "<rect class=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\">\
                     <title>{} {}: {}</title></rect>",
                    s.class,
                    y(*v),
                    (8.0 + plot_h - y(*v)).max(0.0),
                    escape(labels.get(i).map_or("", String::as_str)),
                    escape(s.name),
                    escape(&fmt(*v))
                );
            }
        } else {
            // A bucket without data (NaN) is left out rather than drawn as 0.
            let points: Vec<String> = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(i, v)| format!("{:.1},{:.1}", PAD_L + (i as f64 + 0.5) * slot, y(*v)))
                .collect();
            let _ = write!(
                svg,
                "<polyline class=\"{}\" points=\"{}\"><title>{}</title></polyline>",
                s.class,
                points.join(" "),
                escape(s.name)
            );
            for (i, v) in s.values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
                let _ = write!(
                    svg,
                    "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\">\
                     <title>{} {}: {}</title></circle>",
                    s.class,
                    PAD_L + (i as f64 + 0.5) * slot,
                    y(*v),
                    escape(labels.get(i).map_or("", String::as_str)),
                    escape(s.name),
                    escape(&fmt(*v))
                );
            }
        }
    }
    if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{PAD_L}\" y=\"{}\">{}</text>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            CHART_H - 4.0,
            escape(first),
            CHART_W - 8.0,
            CHART_H - 4.0,
            escape(last)
        );
    }
    svg.push_str("</svg><ul class=\"legend\">");
    for s in series {
        let _ = write!(
            svg,
            "<li><span class=\"swatch {}\"></span>{}</li>",
            s.class,
            escape(s.name)
        );
    }
    svg.push_str("</ul></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_formatted() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(int(1234567), "1,234,567");
        assert_eq!(int(-1000), "-1,000");
        assert_eq!(int(12), "12");
        assert_eq!(usd(0.000123), "$0.000123");
        assert_eq!(usd(12.5), "$12.50");
    }

    #[test]
    fn charts_are_svg_with_one_mark_per_point_and_escaped_labels() {
        let labels = vec!["<h1>".to_string(), "b".to_string()];
        let s = [Series {
            name: "requests",
            class: "s1",
            values: vec![1.0, 3.0],
        }];
        let svg = chart("Requests", &labels, &s, true, |v| format!("{v}"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;h1&gt;") && !svg.contains("<h1>"));
        let line = chart("Latency", &labels, &s, false, |v| format!("{v}"));
        assert_eq!(line.matches("<polyline").count(), 1);
    }
}
