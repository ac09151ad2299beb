//! Usage explorer: the usage report over a chosen time range and dimensions, as a table sorted
//! by any column (server-side, so it works without script), and its CSV download.

use super::html;
use super::{Answer, Page, viewer};
use crate::reload::Live;
use crate::usage::store::{self, Dimension, ReportQuery, ReportRow};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::fmt::Write;
use std::sync::Arc;

/// The explorer's query: `from`, `to` (UTC; the report API's forms or a `datetime-local`
/// value), `group_by` (repeated or comma-separated), `sort`, `dir`.
#[derive(Debug, Default)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    group_by: Vec<Dimension>,
    sort: Option<String>,
    desc: bool,
}

/// The measure columns: name, heading, value.
type Column = (&'static str, &'static str, fn(&ReportRow) -> f64);

const COLUMNS: [Column; 12] = [
    ("requests", "Requests", |r| r.measures.requests as f64),
    ("errors", "Errors", |r| r.measures.errors as f64),
    ("fallbacks", "Fallbacks", |r| r.measures.fallbacks as f64),
    ("input_tokens", "Input tokens", |r| {
        r.measures.input_tokens as f64
    }),
    ("cached_tokens", "Cached", |r| {
        r.measures.cached_tokens as f64
    }),
    ("output_tokens", "Output tokens", |r| {
        r.measures.output_tokens as f64
    }),
    ("reasoning_tokens", "Reasoning", |r| {
        r.measures.reasoning_tokens as f64
    }),
    ("cost_usd", "Cost", |r| r.measures.cost_usd),
    ("latency_ms_p50", "p50 ms", |r| r.latency_ms_p50),
    ("latency_ms_p95", "p95 ms", |r| r.latency_ms_p95),
    ("latency_ms_p99", "p99 ms", |r| r.latency_ms_p99),
    ("ttft_ms_p50", "TTFT p50 ms", |r| {
        r.ttft_ms_p50.unwrap_or(0.0)
    }),
];

fn parse(pairs: &[(String, String)]) -> Result<Params, String> {
    let mut p = Params::default();
    for (k, v) in pairs {
        let v = v.trim();
        match k.as_str() {
            "from" if !v.is_empty() => p.from = Some(v.to_string()),
            "to" if !v.is_empty() => p.to = Some(v.to_string()),
            "group_by" => {
                for d in Dimension::parse_list(v)? {
                    if !p.group_by.contains(&d) {
                        p.group_by.push(d);
                    }
                }
            }
            "sort" if !v.is_empty() => p.sort = Some(v.to_string()),
            "dir" => p.desc = v == "desc",
            _ => {}
        }
    }
    if p.group_by.is_empty() {
        p.group_by.push(Dimension::Group);
    }
    Ok(p)
}

/// The range asked for (default: the last 24 hours).
fn range(p: &Params) -> Result<(i64, i64), String> {
    let to = match &p.to {
        Some(t) => crate::time::parse_time_ms(t)?,
        None => crate::time::now_ms() + 1,
    };
    let from = match &p.from {
        Some(f) => crate::time::parse_time_ms(f)?,
        None => to - 86_400_000,
    };
    if from > to {
        return Err("`from` is after `to`".into());
    }
    Ok((from, to))
}

/// The query string of `p`, with `sort`/`dir` replaced.
fn link(p: &Params, from: i64, to: i64, sort: &str, desc: bool) -> String {
    let dims: Vec<&str> = p.group_by.iter().map(|d| d.name()).collect();
    format!(
        "from={}&to={}&group_by={}&sort={}&dir={}",
        html::url_encode(&input_time(from)),
        html::url_encode(&input_end(to)),
        html::url_encode(&dims.join(",")),
        html::url_encode(sort),
        if desc { "desc" } else { "asc" }
    )
}

/// A time as a `datetime-local` value (UTC, minutes; rounded down).
fn input_time(ms: i64) -> String {
    crate::time::rfc3339_ms(ms)[..16].to_string()
}

/// The end of a range as a `datetime-local` value, rounded up to the minute so that
/// submitting the form again keeps the records of the last minute.
fn input_end(ms: i64) -> String {
    input_time(ms + 59_999)
}

/// The explorer's parameters and time range from its query string.
fn read(pairs: &[(String, String)]) -> Result<(Params, (i64, i64)), String> {
    let p = parse(pairs)?;
    let r = range(&p)?;
    Ok((p, r))
}

/// The report `p` asks for over `[from, to)`, sorted as asked (`Err`: no store, or it failed,
/// logged).
async fn report(
    v: &super::Viewer,
    p: &Params,
    from: i64,
    to: i64,
) -> Result<(ReportQuery, Vec<ReportRow>), ()> {
    let q = ReportQuery {
        from_ms: from,
        to_ms: to,
        group_by: p.group_by.clone(),
        caller: None,
    };
    let store = v.state.store.as_ref().ok_or(())?;
    let mut rows = store::report::run(store.as_ref(), &q).await.map_err(|e| {
        tracing::warn!(error = %e, "console usage: usage store query failed");
    })?;
    sort(p, &mut rows);
    Ok((q, rows))
}

/// `GET /console/usage`.
pub(super) async fn page(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Answer {
    let v = viewer(&live, &headers, Page::Usage)?;
    let pairs = q.map(|Query(p)| p).unwrap_or_default();
    let mut body = String::from("<h1>Usage</h1>");
    let (p, (from, to)) = match read(&pairs) {
        Ok(x) => x,
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"error\" role=\"alert\">{}</p>",
                html::escape(&e)
            );
            let p = Params {
                group_by: vec![Dimension::Group],
                ..Params::default()
            };
            let to = crate::time::now_ms() + 1;
            body.push_str(&form(&p, to - 86_400_000, to));
            return Err(html::respond(
                StatusCode::BAD_REQUEST,
                html::layout(&v.who, Some(Page::Usage), "Usage", &body),
            ));
        }
    };
    body.push_str(&form(&p, from, to));
    match report(&v, &p, from, to).await {
        Err(()) => body.push_str(&html::unavailable("The usage report")),
        Ok((_, rows)) => body.push_str(&table(&p, from, to, &rows)),
    }
    Ok(html::respond(
        StatusCode::OK,
        html::layout(&v.who, Some(Page::Usage), "Usage", &body),
    ))
}

fn sort(p: &Params, rows: &mut [ReportRow]) {
    let Some(s) = p.sort.as_deref() else {
        return; // the report's own order: by dimension values
    };
    if let Some((_, _, f)) = COLUMNS.iter().find(|(n, ..)| *n == s) {
        rows.sort_by(|a, b| f(a).total_cmp(&f(b)));
    } else {
        rows.sort_by(|a, b| a.key.get(s).cmp(&b.key.get(s)));
    }
    if p.desc {
        rows.reverse();
    }
}

fn form(p: &Params, from: i64, to: i64) -> String {
    let mut s = format!(
        "<form class=\"picker\" method=\"get\" action=\"/console/usage\">\
         <label>From (UTC) <input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
         <label>To (UTC) <input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
         <fieldset><legend>Group by</legend>",
        input_time(from),
        input_end(to)
    );
    for (name, d) in Dimension::ALL {
        let checked = if p.group_by.contains(d) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<label class=\"check\"><input type=\"checkbox\" name=\"group_by\" value=\"{name}\"{checked}>{name}</label>"
        );
    }
    s.push_str("</fieldset><button type=\"submit\">Report</button></form>");
    s
}

fn table(p: &Params, from: i64, to: i64, rows: &[ReportRow]) -> String {
    let here = link(p, from, to, p.sort.as_deref().unwrap_or(""), p.desc);
    let mut s = format!(
        "<p class=\"actions\"><a class=\"button\" href=\"/console/usage.csv?{}\" download>Download CSV</a> \
         <span class=\"count\">{} rows</span></p><table class=\"report\"><thead><tr>",
        html::escape(&here),
        rows.len()
    );
    let header = |s: &mut String, name: &str, heading: &str, num: bool| {
        let active = p.sort.as_deref() == Some(name);
        let desc = if active { !p.desc } else { num };
        let mark = match (active, p.desc) {
            (true, true) => " ▼",
            (true, false) => " ▲",
            _ => "",
        };
        let class = if num { " class=\"num\"" } else { "" };
        let _ = write!(
            s,
            "<th{class}><a href=\"/console/usage?{}\" data-sort=\"{name}\">{}{mark}</a></th>",
            html::escape(&link(p, from, to, name, desc)),
            html::escape(heading)
        );
    };
    for d in &p.group_by {
        header(&mut s, d.name(), d.name(), false);
    }
    for (name, heading, _) in COLUMNS {
        header(&mut s, name, heading, true);
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for d in &p.group_by {
            let k = r.key.get(d.name()).map_or("", String::as_str);
            s.push_str(&html::cell(if k.is_empty() { "(none)" } else { k }, None));
        }
        for (name, _, f) in COLUMNS {
            let v = f(r);
            let text = match name {
                "cost_usd" => html::usd(v),
                n if n.contains("_ms_") => format!("{v:.1}"),
                _ => html::int(v as i64),
            };
            s.push_str(&html::cell(&text, Some(v)));
        }
        s.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            s,
            "<tr><td colspan=\"{}\" class=\"empty\">No requests in this range.</td></tr>",
            p.group_by.len() + COLUMNS.len()
        );
    }
    s.push_str("</tbody></table>");
    s
}

/// `GET /console/usage.csv`: the explorer's report as a CSV download.
pub(super) async fn csv(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Answer {
    let v = viewer(&live, &headers, Page::Usage)?;
    let pairs = q.map(|Query(p)| p).unwrap_or_default();
    let (p, (from, to)) = read(&pairs).map_err(|e| {
        html::respond(
            StatusCode::BAD_REQUEST,
            html::layout(
                &v.who,
                Some(Page::Usage),
                "Usage",
                &format!("<p class=\"error\">{}</p>", html::escape(&e)),
            ),
        )
    })?;
    let (q, rows) = report(&v, &p, from, to).await.map_err(|()| {
        html::respond(
            StatusCode::SERVICE_UNAVAILABLE,
            html::bare("Usage", &html::unavailable("The usage report")),
        )
    })?;
    let mut r = Response::new(Body::from(store::render_csv(&q, &rows)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!(
        "attachment; filename=\"usage-{}.csv\"",
        crate::time::stamp_ms(from)
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(html::secure(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_is_read_repeated_or_comma_separated() {
        let pairs: Vec<(String, String)> = [
            ("group_by", "caller,day"),
            ("group_by", "model"),
            ("group_by", "caller"),
            ("sort", "cost_usd"),
            ("dir", "desc"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = parse(&pairs).unwrap();
        assert_eq!(
            p.group_by,
            [Dimension::Caller, Dimension::Day, Dimension::Model]
        );
        assert!(p.desc);
        assert!(parse(&[("group_by".into(), "colour".into())]).is_err());
        assert_eq!(input_time(0), "1970-01-01T00:00");
    }
}
