//! Requests: the newest usage records (filter by caller, group and status; older pages by a
//! time cursor), and a request id's detail: every record of that id in the store (each router
//! hop that recorded it) with every attempt.

use super::html;
use super::{Answer, Page, viewer};
use crate::reload::Live;
use crate::usage::UsageRecord;
use crate::usage::store::RecentQuery;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::fmt::Write;
use std::sync::Arc;

/// Records per page.
const PAGE: u32 = 100;

/// The list's filters and cursor.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Filters {
    caller: Option<String>,
    group: Option<String>,
    status: Option<String>,
    before: Option<i64>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| crate::bounds::clip(s, 200).into_owned())
}

/// `GET /console/requests`.
pub(super) async fn list(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    q: Result<Query<Filters>, QueryRejection>,
) -> Answer {
    let v = viewer(&live, &headers, Page::Requests)?;
    let f = q.map(|Query(f)| f).unwrap_or_default();
    let query = RecentQuery {
        before_ms: f.before.unwrap_or(i64::MAX),
        caller: nonempty(&f.caller),
        group: nonempty(&f.group),
        status: nonempty(&f.status),
        limit: PAGE,
    };
    let mut body = String::from("<h1>Requests</h1>");
    body.push_str(&lookup_form(""));
    body.push_str(&filter_form(&v.state.config, &query));
    let records = match v.state.store.as_ref() {
        None => Err(()),
        Some(s) => s.recent(&query).await.map_err(|e| {
            tracing::warn!(error = %e, "console requests: usage store query failed");
        }),
    };
    match records {
        Err(()) => body.push_str(&html::unavailable("The request list")),
        Ok(records) => {
            body.push_str(&table(&records));
            if records.len() == PAGE as usize {
                if let Some(last) = records.last() {
                    let mut next = format!("before={}", last.started_at_ms);
                    for (k, val) in [
                        ("caller", &query.caller),
                        ("group", &query.group),
                        ("status", &query.status),
                    ] {
                        if let Some(val) = val {
                            let _ = write!(next, "&{k}={}", html::url_encode(val));
                        }
                    }
                    let _ = write!(
                        body,
                        "<p><a class=\"button\" href=\"/console/requests?{}\">Older</a></p>",
                        html::escape(&next)
                    );
                }
            }
        }
    }
    Ok(html::respond(
        StatusCode::OK,
        html::layout(&v.who, Some(Page::Requests), "Requests", &body),
    ))
}

fn lookup_form(id: &str) -> String {
    format!(
        "<form class=\"picker\" method=\"get\" action=\"/console/requests/lookup\">\
         <label>Request id <input name=\"id\" value=\"{}\" size=\"40\" required></label>\
         <button type=\"submit\">Look up</button></form>",
        html::escape(id)
    )
}

fn filter_form(config: &crate::config::Config, q: &RecentQuery) -> String {
    let options = |names: &mut dyn Iterator<Item = &str>, current: &Option<String>| {
        let mut s = String::from("<option value=\"\">any</option>");
        for n in names {
            let sel = if current.as_deref() == Some(n) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                s,
                "<option value=\"{0}\"{sel}>{0}</option>",
                html::escape(n)
            );
        }
        s
    };
    format!(
        "<form class=\"picker\" method=\"get\" action=\"/console/requests\">\
         <label>Caller <select name=\"caller\" data-autosubmit>{}</select></label>\
         <label>Group <select name=\"group\" data-autosubmit>{}</select></label>\
         <label>Status <select name=\"status\" data-autosubmit>{}</select></label>\
         <button type=\"submit\">Filter</button></form>",
        options(
            &mut config.callers.iter().map(|c| c.name.as_str()),
            &q.caller
        ),
        options(&mut config.groups.iter().map(|g| g.name.as_str()), &q.group),
        options(&mut ["ok", "error"].into_iter(), &q.status),
    )
}

fn target(r: &UsageRecord) -> String {
    match (&r.provider, &r.model) {
        (Some(p), Some(m)) => format!("{p}/{m}"),
        _ => "—".into(),
    }
}

fn table(records: &[UsageRecord]) -> String {
    let mut s = String::from(
        "<table class=\"requests\"><thead><tr><th>Time (UTC)</th><th>Request id</th>\
         <th>Status</th><th>Caller</th><th>Group</th><th>Target</th>\
         <th class=\"num\">Attempts</th><th class=\"num\">Latency</th>\
         <th class=\"num\">Tokens in/out</th><th class=\"num\">Cost</th></tr></thead><tbody>",
    );
    for r in records {
        let status = format!(
            "{} {}{}",
            r.http_status,
            r.status,
            r.error_kind
                .as_deref()
                .map_or(String::new(), |k| format!(" ({k})"))
        );
        let attempts = if r.fallback {
            format!("{} (fallback)", r.attempts)
        } else {
            r.attempts.to_string()
        };
        let _ = write!(
            s,
            "<tr class=\"{}\">{}<td><a href=\"/console/requests/{}\">{}</a></td>{}{}{}{}{}{}{}{}</tr>",
            html::escape(&r.status),
            html::cell(&crate::time::rfc3339_ms(r.started_at_ms), None),
            html::url_encode(&r.request_id),
            html::escape(&r.request_id),
            html::cell(&status, None),
            html::cell(r.caller.as_deref().unwrap_or("—"), None),
            html::cell(r.group.as_deref().unwrap_or("—"), None),
            html::cell(&target(r), None),
            html::cell(&attempts, Some(f64::from(r.attempts))),
            html::cell(&html::ms(r.latency_ms), Some(r.latency_ms)),
            html::cell(
                &format!(
                    "{} / {}",
                    html::int(r.input_tokens),
                    html::int(r.output_tokens)
                ),
                Some(r.input_tokens as f64)
            ),
            html::cell(&html::usd(r.cost_usd), Some(r.cost_usd)),
        );
    }
    if records.is_empty() {
        s.push_str("<tr><td colspan=\"10\" class=\"empty\">No requests match.</td></tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// The lookup form's field.
#[derive(Debug, serde::Deserialize)]
pub(super) struct Lookup {
    id: String,
}

/// `GET /console/requests/lookup?id=`: to the request's page.
pub(super) async fn lookup(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    q: Result<Query<Lookup>, QueryRejection>,
) -> Answer {
    viewer(&live, &headers, Page::Requests)?;
    let id = q.map(|Query(l)| l.id).unwrap_or_default();
    let to = format!("/console/requests/{}", html::url_encode(id.trim()));
    let mut r = super::redirect("/console/requests");
    if let Ok(v) = HeaderValue::from_str(&to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// `GET /console/requests/{id}`.
pub(super) async fn detail(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let v = viewer(&live, &headers, Page::Requests)?;
    let id = crate::bounds::clip(&id, crate::bounds::MAX_ID_LEN).into_owned();
    let mut body = format!("<h1>Request <code>{}</code></h1>", html::escape(&id));
    body.push_str(&lookup_form(&id));
    let records = match v.state.store.as_ref() {
        None => Err(()),
        Some(s) => s.by_request_id(&id).await.map_err(|e| {
            tracing::warn!(error = %e, "console request detail: usage store query failed");
        }),
    };
    let status = match records {
        Err(()) => {
            body.push_str(&html::unavailable("The request"));
            StatusCode::SERVICE_UNAVAILABLE
        }
        Ok(records) if records.is_empty() => {
            body.push_str(
                "<p class=\"error\" role=\"alert\">No usage record has this request id \
                 (records are written within a second of the response's end).</p>",
            );
            StatusCode::NOT_FOUND
        }
        Ok(records) => {
            let _ = write!(
                body,
                "<p>{} record(s): one per router hop that recorded this request.</p>",
                records.len()
            );
            for r in &records {
                body.push_str(&record(r));
            }
            StatusCode::OK
        }
    };
    Ok(html::respond(
        status,
        html::layout(&v.who, Some(Page::Requests), "Request", &body),
    ))
}

/// One record: its facts and its attempts.
fn record(r: &UsageRecord) -> String {
    let hop = r
        .parent_id
        .as_deref()
        .map_or("from a client (first hop)".to_string(), |p| {
            format!("from router {p}")
        });
    let facts = [
        ("Hop", hop),
        ("Time (UTC)", crate::time::rfc3339_ms(r.started_at_ms)),
        (
            "Status",
            format!(
                "{} {}{}",
                r.http_status,
                r.status,
                r.error_kind
                    .as_deref()
                    .map_or(String::new(), |k| format!(" ({k})"))
            ),
        ),
        (
            "Caller",
            format!(
                "{} (project {})",
                r.caller.as_deref().unwrap_or("—"),
                r.project.as_deref().unwrap_or("—")
            ),
        ),
        ("Client / surface", format!("{} / {}", r.client, r.surface)),
        ("Group", r.group.clone().unwrap_or_else(|| "—".into())),
        ("Served by", target(r)),
        (
            "Attempts",
            format!(
                "{}{}",
                r.attempts,
                if r.fallback { " (fallback used)" } else { "" }
            ),
        ),
        (
            "Latency / TTFT",
            format!(
                "{} / {}",
                html::ms(r.latency_ms),
                r.ttft_ms.map_or("—".into(), html::ms)
            ),
        ),
        (
            "Tokens in / cached / out / reasoning",
            format!(
                "{} / {} / {} / {}",
                html::int(r.input_tokens),
                html::int(r.cached_tokens),
                html::int(r.output_tokens),
                html::int(r.reasoning_tokens)
            ),
        ),
        ("Cost", html::usd(r.cost_usd)),
        ("Stream", r.stream.to_string()),
        ("Rule", r.rule.clone().unwrap_or_else(|| "—".into())),
        ("Quota", r.quota.clone().unwrap_or_else(|| "—".into())),
        ("Config hash", r.config_hash.clone()),
        ("Record id", r.record_id.clone()),
    ];
    let mut s = String::from("<section class=\"record\"><dl>");
    for (k, val) in facts {
        let _ = write!(s, "<dt>{k}</dt><dd>{}</dd>", html::escape(&val));
    }
    s.push_str(
        "</dl><h2>Attempts</h2><table class=\"attempts\"><thead><tr><th>#</th><th>Target</th>\
         <th>Outcome</th><th class=\"num\">Upstream status</th><th class=\"num\">Latency</th>\
         </tr></thead><tbody>",
    );
    let attempts: Vec<serde_json::Value> =
        serde_json::from_str(&r.attempts_json).unwrap_or_default();
    for (i, a) in attempts.iter().enumerate() {
        let text = |k: &str| a[k].as_str().unwrap_or("—").to_string();
        let latency = a["latency_ms"].as_f64().unwrap_or(0.0);
        let _ = write!(
            s,
            "<tr>{}{}{}{}{}</tr>",
            html::cell(&(i + 1).to_string(), Some((i + 1) as f64)),
            html::cell(&format!("{}/{}", text("provider"), text("model")), None),
            html::cell(&text("outcome"), None),
            html::cell(
                &a["status"].as_u64().map_or("—".into(), |s| s.to_string()),
                a["status"].as_f64()
            ),
            html::cell(&html::ms(latency), Some(latency)),
        );
    }
    s.push_str("</tbody></table>");
    for (heading, json) in [("Notes", &r.annotations), ("Warnings", &r.warnings)] {
        let items: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
        if items.is_empty() {
            continue;
        }
        let _ = write!(s, "<h2>{heading}</h2><ul>");
        for it in items {
            let text = match &it {
                serde_json::Value::String(t) => t.clone(),
                other => match (other["stage"].as_str(), other["note"].as_str()) {
                    (Some(st), Some(n)) => format!("{st}: {n}"),
                    _ => other.to_string(),
                },
            };
            let _ = write!(s, "<li>{}</li>", html::escape(&text));
        }
        s.push_str("</ul>");
    }
    s.push_str("</section>");
    s
}
