//! Overview: requests, errors, latency percentiles, tokens and cost over a window, as charts
//! per hour or day, and the top callers, projects, groups and models by cost — all from the
//! store's hourly rollups (two indexed range reads, whatever the number of records).

use super::html::{self, Series};
use super::{Answer, Page, viewer};
use crate::reload::Live;
use crate::usage::store::Dimension;
use crate::usage::store::report::quantile;
use crate::usage::store::rollup::Sums;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use http::{HeaderMap, StatusCode};
use std::collections::BTreeMap;
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

/// The top lists' headings (caller, project, group, model).
const TOPS: [(&str, &str); 4] = [
    ("caller", "Top callers"),
    ("project", "Top projects"),
    ("group", "Top groups"),
    ("model", "Top models"),
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
    // Whole hours: the hourly rollups are what the overview reads.
    let now = crate::time::now_ms();
    let to_hour = now.div_euclid(HOUR) + 1;
    let from_hour = to_hour - len / HOUR;
    let mut body = String::from("<h1>Overview</h1>");
    body.push_str(&picker(name));
    let rollup = match v.state.store.as_ref() {
        None => Err(()),
        Some(s) => s
            .rollup(from_hour, to_hour, bucket == Dimension::Day)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "console overview: usage store query failed");
            }),
    };
    match rollup {
        Err(()) => body.push_str(&html::unavailable("The overview")),
        Ok(r) => {
            // Time bucket (hour or day) -> its figures.
            let mut points: BTreeMap<i64, Point> = BTreeMap::new();
            for (t, s) in &r.series {
                points.entry(*t).or_default().add(s, &BTreeMap::new());
            }
            for (t, hist) in r.histograms() {
                points.entry(t).or_default().add(&Sums::default(), &hist);
            }
            let mut total = Point::default();
            for p in points.values() {
                total.add(&p.sums, &p.hist);
            }
            body.push_str(&tiles(&total));
            body.push_str(&charts(bucket, from_hour, to_hour, &points));
            body.push_str("<div class=\"tops\">");
            for (key, heading) in TOPS {
                body.push_str(&top(key, heading, r.top(key)));
            }
            body.push_str("</div>");
        }
    }
    Ok(html::respond(
        StatusCode::OK,
        html::layout(&v.who, Some(Page::Overview), "Overview", &body),
    ))
}

const HOUR: i64 = 3_600_000;

/// The figures of one chart bucket (or of the whole window).
#[derive(Debug, Default)]
struct Point {
    sums: Sums,
    hist: BTreeMap<i32, i64>,
}

impl Point {
    fn add(&mut self, s: &Sums, hist: &BTreeMap<i32, i64>) {
        self.sums.add(s);
        for (b, n) in hist {
            *self.hist.entry(*b).or_default() += n;
        }
    }

    fn p(&self, q: f64) -> f64 {
        quantile(&self.hist, q).unwrap_or(f64::NAN)
    }
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

fn tiles(t: &Point) -> String {
    let m = &t.sums;
    let rate = if m.requests > 0 {
        format!(" ({:.1}%)", m.errors as f64 * 100.0 / m.requests as f64)
    } else {
        String::new()
    };
    let latency = |q: f64| {
        let v = t.p(q);
        if v.is_nan() {
            "—".into()
        } else {
            html::ms(v)
        }
    };
    let tiles = [
        ("Requests", html::int(m.requests)),
        ("Errors", format!("{}{rate}", html::int(m.errors))),
        ("Latency p50", latency(0.5)),
        ("Latency p95", latency(0.95)),
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

/// The chart buckets of the window, oldest first: label and key (hour or day since the epoch).
fn buckets(bucket: Dimension, from_hour: i64, to_hour: i64) -> Vec<(String, i64)> {
    match bucket {
        Dimension::Day => (from_hour.div_euclid(24)..=(to_hour - 1).div_euclid(24))
            .map(|d| (crate::time::format_date(d), d))
            .collect(),
        _ => (from_hour..to_hour)
            .map(|h| {
                (
                    format!("{}T{:02}:00Z", crate::time::format_date(h / 24), h % 24),
                    h,
                )
            })
            .collect(),
    }
}

fn charts(
    bucket: Dimension,
    from_hour: i64,
    to_hour: i64,
    points: &BTreeMap<i64, Point>,
) -> String {
    let slots = buckets(bucket, from_hour, to_hour);
    let labels: Vec<String> = slots.iter().map(|(l, _)| l.clone()).collect();
    let empty = Point::default();
    let points: Vec<&Point> = slots
        .iter()
        .map(|(_, t)| points.get(t).unwrap_or(&empty))
        .collect();
    let col = |f: &dyn Fn(&Point) -> f64| -> Vec<f64> { points.iter().map(|p| f(p)).collect() };
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
                values: col(&|p| p.sums.requests as f64),
            },
            Series {
                name: "errors",
                class: "s2",
                values: col(&|p| p.sums.errors as f64),
            },
        ],
        true,
        count,
    ));
    // Latency has no value where there were no requests (not 0 ms).
    s.push_str(&html::chart(
        &format!("Latency p50 and p95 {per}"),
        &labels,
        &[
            Series {
                name: "p50",
                class: "s1",
                values: col(&|p| p.p(0.5)),
            },
            Series {
                name: "p95",
                class: "s3",
                values: col(&|p| p.p(0.95)),
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
                values: col(&|p| p.sums.input_tokens as f64),
            },
            Series {
                name: "output",
                class: "s4",
                values: col(&|p| p.sums.output_tokens as f64),
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
            values: col(&|p| p.sums.cost_usd),
        }],
        true,
        html::usd,
    ));
    s.push_str("</section>");
    s
}

/// The ten values of one key with the highest cost (then most requests).
fn top(key: &str, heading: &str, mut rows: Vec<(String, Sums)>) -> String {
    rows.sort_by(|(ka, a), (kb, b)| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.requests.cmp(&a.requests))
            .then(ka.cmp(kb))
    });
    let mut s = format!(
        "<section class=\"top\"><h2>{}</h2><table><thead><tr><th>{key}</th>\
         <th class=\"num\">Requests</th><th class=\"num\">Tokens</th><th class=\"num\">Cost</th>\
         </tr></thead><tbody>",
        html::escape(heading),
    );
    for (k, m) in rows.iter().take(10) {
        let tokens = m.input_tokens + m.output_tokens;
        let _ = write!(
            s,
            "<tr>{}{}{}{}</tr>",
            html::cell(if k.is_empty() { "(none)" } else { k }, None),
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
