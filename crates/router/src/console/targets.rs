//! Targets: each group's targets with their live health (cooling and for how long, failures in
//! a row, time-to-first-byte EWMA) and their share of the group's traffic in the last hour.

use super::html;
use super::{Answer, Page, viewer};
use crate::reload::Live;
use crate::usage::store::{self, Dimension, ReportQuery};
use axum::extract::State;
use http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// The traffic window shares are computed over.
const WINDOW_MS: i64 = 3_600_000;

/// `GET /console/targets`.
pub(super) async fn page(State(live): State<Arc<Live>>, headers: HeaderMap) -> Answer {
    let v = viewer(&live, &headers, Page::Targets)?;
    let state = &v.state;
    let to_ms = crate::time::now_ms() + 1;
    let q = ReportQuery {
        from_ms: to_ms - WINDOW_MS,
        to_ms,
        group_by: vec![Dimension::Group, Dimension::Provider, Dimension::Model],
        caller: None,
    };
    // (group, provider, model) -> requests in the window.
    let traffic: Option<HashMap<(String, String, String), i64>> = match state.store.as_ref() {
        None => None,
        Some(s) => match store::report::run(s.as_ref(), &q).await {
            Ok(rows) => Some(
                rows.into_iter()
                    .map(|r| {
                        let k = |d: &str| r.key.get(d).cloned().unwrap_or_default();
                        ((k("group"), k("provider"), k("model")), r.measures.requests)
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "console targets: usage store query failed");
                None
            }
        },
    };
    let mut body = String::from(
        "<h1>Targets</h1><p>Health is this router's own view, live. Share of traffic: requests \
         each target served in the last hour, of its group's.</p>",
    );
    if traffic.is_none() {
        body.push_str(&html::unavailable("Traffic in the window"));
    }
    for g in &state.config.groups {
        let served: Vec<i64> = g
            .targets
            .iter()
            .map(|t| {
                let provider = state.config.providers[t.provider].name.clone();
                traffic.as_ref().map_or(0, |m| {
                    m.get(&(g.name.clone(), provider, t.model.clone()))
                        .copied()
                        .unwrap_or(0)
                })
            })
            .collect();
        let total: i64 = served.iter().sum();
        let _ = write!(
            body,
            "<section class=\"group\"><h2>{} <small>({:?}, {} target(s))</small></h2>\
             <table class=\"targets\"><thead><tr><th>Target</th><th class=\"num\">Weight</th>\
             <th>Health</th><th class=\"num\">Cooldown left</th><th class=\"num\">Failures in a row</th>\
             <th class=\"num\">TTFB (EWMA)</th><th class=\"num\">Requests (1h)</th>\
             <th class=\"num\">Share</th></tr></thead><tbody>",
            html::escape(&g.name),
            g.strategy,
            g.targets.len()
        );
        for (t, n) in g.targets.iter().zip(&served) {
            let cooling = state.health.cooling(t.id);
            let failures = state.health.failures(t.id);
            let health = match (cooling, failures) {
                (Some(_), _) => "cooling",
                (None, 0) => "healthy",
                (None, _) => "failing",
            };
            let left = cooling.map_or(0.0, |d| d.as_secs_f64());
            let ttfb = state.health.ttfb(t.id).map(|d| d.as_secs_f64() * 1000.0);
            let share = if total > 0 {
                *n as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            let _ = write!(
                body,
                "<tr class=\"{health}\">{}{}<td><span class=\"badge {health}\">{health}</span></td>{}{}{}{}{}</tr>",
                html::cell(
                    &format!("{}/{}", state.config.providers[t.provider].name, t.model),
                    None
                ),
                html::cell(&t.weight.to_string(), Some(f64::from(t.weight))),
                html::cell(
                    &cooling.map_or("—".into(), |_| format!("{left:.1} s")),
                    Some(left)
                ),
                html::cell(&failures.to_string(), Some(f64::from(failures))),
                html::cell(&ttfb.map_or("—".into(), html::ms), ttfb),
                html::cell(&html::int(*n), Some(*n as f64)),
                html::cell(&format!("{share:.1}%"), Some(share)),
            );
        }
        body.push_str("</tbody></table></section>");
    }
    Ok(html::respond(
        StatusCode::OK,
        html::layout(&v.who, Some(Page::Targets), "Targets", &body),
    ))
}
