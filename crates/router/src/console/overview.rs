//! Overview: requests, errors, latency percentiles, tokens and cost over a window, as charts
//! per hour or day, and the top callers, projects, groups and models by cost. Six reports over
//! the same window, run concurrently.

use super::html::{self, Series};
use super::{Answer, Page, viewer};
use crate::reload::Live;
use crate::usage::store::{self, Dimension, ReportQuery, ReportRow, UsageStore};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use http::{HeaderMap, StatusCode};
use std::fmt::Write;
use std::sync::Arc;

/// The windows the overview offers: name, length in ms, bucket dimension.
const WINDOWS: [(&str, i64, Dimension); 4] = [
    ("1h", 3_600_000, Dimension::Hour),
    ("24h", 86_400_000, Dimension::Hour),
    ("7d", 7 * 86_400_000, Dimension::Day),
    ("30d", 30 * 86_400_000, Dimension::Day),
];

/// The overview's query string.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Params {
    window: Option<String>,
}

/// The top lists: dimension and heading.
const TOPS: [(Dimension, &str); 4] = [
    (Dimension::Caller, "Top callers"),
    (Dimension::Project, "Top projects"),
    (Dimension::Group, "Top groups"),
    (Dimension::Model, "Top models"),
];

/// `GET /console/`.
pub(super) async fn page(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    q: Result<Query<Params>, QueryRejection>,
) -> Answer {
    let v = viewer(&live, &headers, Page::Overview)?;
    let p = q.map(|Query(p)| p).unwrap_or_default();
    let (name, len, bucket) = WINDOWS
        .iter()
        .copied()
        .find(|(n, ..)| Some(*n) == p.window.as_deref())
        .unwrap_or(WINDOWS[1]);
    let to_ms = crate::time::now_ms() + 1;
    let from_ms = to_ms - len;
    let mut body = String::from("<h1>Overview</h1>");
    body.push_str(&picker(name));
    let Some(store) = v.state.store.as_ref() else {
        body.push_str(&html::unavailable("The overview"));
        return Ok(html::respond(
            StatusCode::OK,
            html::layout(&v.who, Some(Page::Overview), "Overview", &body),
        ));
    };
    let query = |group_by: Vec<Dimension>| ReportQuery {
        from_ms,
        to_ms,
        group_by,
        caller: None,
    };
    let queries: Vec<ReportQuery> = [vec![], vec![bucket]]
        .into_iter()
        .chain(TOPS.iter().map(|(d, _)| vec![*d]))
        .map(query)
        .collect();
    let results = futures_util::future::try_join_all(
        queries
            .iter()
            .map(|q| store::report::run(store.as_ref() as &dyn UsageStore, q)),
    )
    .await;
    match results {
        Err(e) => {
            tracing::warn!(error = %e, "console overview: usage store query failed");
            body.push_str(&html::unavailable("The overview"));
        }
        Ok(r) => {
            body.push_str(&tiles(r[0].first()));
            body.push_str(&charts(bucket, from_ms, to_ms, &r[1]));
            body.push_str("<div class=\"tops\">");
            for ((d, heading), rows) in TOPS.iter().zip(&r[2..]) {
                body.push_str(&top(*d, heading, rows));
            }
            body.push_str("</div>");
        }
    }
    Ok(html::respond(
        StatusCode::OK,
        html::layout(&v.who, Some(Page::Overview), "Overview", &body),
    ))
}

fn picker(current: &str) -> String {
    let mut s = String::from(
        "<form class=\"picker\" method=\"get\" action=\"/console/\"><label>Window \
         <select name=\"window\" data-autosubmit>",
    );
    for (n, ..) in WINDOWS {
        let sel = if n == current { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{n}\"{sel}>last {n}</option>");
    }
    s.push_str("</select></label><button type=\"submit\">Show</button></form>");
    s
}

fn tiles(total: Option<&ReportRow>) -> String {
    let empty = ReportRow {
        key: Default::default(),
        measures: Default::default(),
        latency_ms_p50: 0.0,
        latency_ms_p95: 0.0,
        latency_ms_p99: 0.0,
        ttft_ms_p50: None,
        ttft_ms_p95: None,
    };
    let t = total.unwrap_or(&empty);
    let m = &t.measures;
    let rate = if m.requests > 0 {
        format!(" ({:.1}%)", m.errors as f64 * 100.0 / m.requests as f64)
    } else {
        String::new()
    };
    let tiles = [
        ("Requests", html::int(m.requests)),
        ("Errors", format!("{}{rate}", html::int(m.errors))),
        ("Latency p50", html::ms(t.latency_ms_p50)),
        ("Latency p95", html::ms(t.latency_ms_p95)),
        (
            "Tokens in / out",
            format!(
                "{} / {}",
                html::int(m.input_tokens),
                html::int(m.output_tokens)
            ),
        ),
        ("Cost", html::usd(m.cost_usd)),
    ];
    let mut s = String::from("<section class=\"tiles\">");
    for (k, v) in tiles {
        let _ = write!(
            s,
            "<div class=\"tile\"><div class=\"k\">{k}</div><div class=\"v\" data-tile=\"{}\">{}</div></div>",
            html::escape(&k.to_ascii_lowercase()),
            html::escape(&v)
        );
    }
    s.push_str("</section>");
    s
}

/// Bucket labels of the window, in the reports' spelling, oldest first.
fn buckets(bucket: Dimension, from_ms: i64, to_ms: i64) -> Vec<String> {
    let last = to_ms - 1;
    match bucket {
        Dimension::Day => (from_ms / 86_400_000..=last / 86_400_000)
            .map(crate::time::format_date)
            .collect(),
        _ => (from_ms / 3_600_000..=last / 3_600_000)
            .map(|h| format!("{}T{:02}:00Z", crate::time::format_date(h / 24), h % 24))
            .collect(),
    }
}

fn charts(bucket: Dimension, from_ms: i64, to_ms: i64, rows: &[ReportRow]) -> String {
    let labels = buckets(bucket, from_ms, to_ms);
    let by_label: std::collections::HashMap<&str, &ReportRow> = rows
        .iter()
        .filter_map(|r| r.key.get(bucket.name()).map(|k| (k.as_str(), r)))
        .collect();
    let col_or = |missing: f64, f: &dyn Fn(&ReportRow) -> f64| -> Vec<f64> {
        labels
            .iter()
            .map(|l| by_label.get(l.as_str()).map_or(missing, |r| f(r)))
            .collect()
    };
    let col = |f: &dyn Fn(&ReportRow) -> f64| col_or(0.0, f);
    // Latency has no value where there were no requests (not 0 ms).
    let latency = |f: &dyn Fn(&ReportRow) -> f64| col_or(f64::NAN, f);
    let count = |v: f64| html::int(v as i64);
    let per = if bucket == Dimension::Day {
        "per day"
    } else {
        "per hour"
    };
    let mut s = String::from("<section class=\"charts\">");
    s.push_str(&html::chart(
        &format!("Requests and errors {per}"),
        &labels,
        &[
            Series {
                name: "requests",
                class: "s1",
                values: col(&|r| r.measures.requests as f64),
            },
            Series {
                name: "errors",
                class: "s2",
                values: col(&|r| r.measures.errors as f64),
            },
        ],
        true,
        count,
    ));
    s.push_str(&html::chart(
        &format!("Latency p50 and p95 {per}"),
        &labels,
        &[
            Series {
                name: "p50",
                class: "s1",
                values: latency(&|r| r.latency_ms_p50),
            },
            Series {
                name: "p95",
                class: "s3",
                values: latency(&|r| r.latency_ms_p95),
            },
        ],
        false,
        html::ms,
    ));
    s.push_str(&html::chart(
        &format!("Tokens {per}"),
        &labels,
        &[
            Series {
                name: "input",
                class: "s1",
                values: col(&|r| r.measures.input_tokens as f64),
            },
            Series {
                name: "output",
                class: "s4",
                values: col(&|r| r.measures.output_tokens as f64),
            },
        ],
        true,
        count,
    ));
    s.push_str(&html::chart(
        &format!("Cost {per}"),
        &labels,
        &[Series {
            name: "cost",
            class: "s4",
            values: col(&|r| r.measures.cost_usd),
        }],
        true,
        html::usd,
    ));
    s.push_str("</section>");
    s
}

/// The ten rows with the highest cost (then most requests) of a one-dimension report.
fn top(d: Dimension, heading: &str, rows: &[ReportRow]) -> String {
    let mut rows: Vec<&ReportRow> = rows.iter().collect();
    rows.sort_by(|a, b| {
        b.measures
            .cost_usd
            .total_cmp(&a.measures.cost_usd)
            .then(b.measures.requests.cmp(&a.measures.requests))
    });
    let mut s = format!(
        "<section class=\"top\"><h2>{}</h2><table><thead><tr><th>{}</th>\
         <th class=\"num\">Requests</th><th class=\"num\">Tokens</th><th class=\"num\">Cost</th>\
         </tr></thead><tbody>",
        html::escape(heading),
        d.name()
    );
    for r in rows.iter().take(10) {
        let m = &r.measures;
        let key = r.key.get(d.name()).map_or("", String::as_str);
        let tokens = m.input_tokens + m.output_tokens;
        let _ = write!(
            s,
            "<tr>{}{}{}{}</tr>",
            html::cell(if key.is_empty() { "(none)" } else { key }, None),
            html::cell(&html::int(m.requests), Some(m.requests as f64)),
            html::cell(&html::int(tokens), Some(tokens as f64)),
            html::cell(&html::usd(m.cost_usd), Some(m.cost_usd)),
        );
    }
    if rows.is_empty() {
        s.push_str("<tr><td colspan=\"4\" class=\"empty\">No requests in this window.</td></tr>");
    }
    s.push_str("</tbody></table></section>");
    s
}
