//! The operator surface: `/metrics` (metrics-admin), usage reports, per-request lookups and
//! exports (report-admin), and a caller's own usage summary (caller). Admin roles include all.
//! Errors come from the one renderer ([`Error::into_response`]), in the OpenAI shape.

pub mod diagnostics;

use crate::auth::{Caller, Role};
use crate::error::Error;
use crate::license::{Feature, Status};
use crate::reload::{Current, Live, ReloadError};
use crate::state::AppState;
use crate::time::parse_time_ms;
use crate::usage::store::{self, Dimension, ReportQuery};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use dialects::Dialect;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What an operator handler answers: its response, or an error response made early.
type Answer = Result<Response, Response>;

/// Authenticates a token that holds any of `roles` (admin holds them all); the refusal is the
/// 401/403 response.
#[allow(clippy::result_large_err)] // the refusal is the response itself, built only when refused
fn require(state: &AppState, headers: &HeaderMap, roles: &[Role]) -> Result<Arc<Caller>, Response> {
    state.auth.require(headers, roles).map_err(refuse)
}

/// Refuses an endpoint of a feature the license does not include (after authentication, so
/// the license is not shown to strangers).
#[allow(clippy::result_large_err)] // the refusal is the response itself
fn licensed(state: &AppState, feature: Feature) -> Result<(), Response> {
    match state.license.license() {
        Some(l) if !l.has(feature) => Err(refuse(Error::FeatureNotLicensed {
            feature: feature.name(),
            license_id: l.license_id.clone(),
        })),
        _ => Ok(()),
    }
}

/// An error as the operator API answers it.
fn refuse(e: Error) -> Response {
    e.into_response(Dialect::OpenAiChat)
}

fn bad_request(reason: String) -> Response {
    refuse(Error::InvalidQuery { reason })
}

fn store_unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "usage store query failed");
    refuse(Error::StoreUnavailable)
}

fn no_store() -> Response {
    refuse(Error::StoreUnavailable)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /metrics`: Prometheus text, for metrics-admin tokens.
pub async fn metrics(Current(state): Current, headers: HeaderMap) -> Answer {
    require(&state, &headers, &[Role::MetricsAdmin])?;
    let m = &state.recorder.metrics;
    if let Some(w) = state.recorder.writer() {
        let s = &w.stats;
        m.usage_queue_depth.set(w.queue_depth() as i64);
        m.usage_dropped
            .set(s.dropped.load(Ordering::Relaxed) as i64);
        m.usage_written
            .set(s.written.load(Ordering::Relaxed) as i64);
        m.usage_spool_bytes
            .set(s.spool_bytes.load(Ordering::Relaxed) as i64);
        m.usage_store_up
            .set(i64::from(s.store_up.load(Ordering::Relaxed)));
        m.usage_spool_rejected
            .set(s.spool_rejected.load(Ordering::Relaxed) as i64);
    }
    let license = state.license.license();
    let status = state.license.status();
    m.set_license(
        license.as_ref().map(|l| l.license_id.as_str()),
        status.as_str(),
        matches!(status, Status::Licensed | Status::Grace),
        license.as_ref().map(|l| l.expires_in(state.license.now())),
    );
    for t in state.config.groups.iter().flat_map(|g| &g.targets) {
        let names = state.recorder.target(t.id);
        let labels = crate::metrics::TargetLabels {
            provider: names.provider.clone(),
            model: names.model.clone(),
        };
        m.target_cooling
            .get_or_create(&labels)
            .set(i64::from(state.health.cooling(t.id).is_some()));
    }
    let mut r = Response::new(Body::from(m.encode()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}

/// A query string we could not read, as our own 400 (not the framework's plain text).
#[allow(clippy::result_large_err)] // the refusal is the response itself
fn query(q: Result<Query<UsageParams>, QueryRejection>) -> Result<UsageParams, Response> {
    q.map(|Query(p)| p).map_err(|e| {
        bad_request(format!(
            "cannot read the query string: {}",
            crate::bounds::clip(&e.body_text(), 200)
        ))
    })
}

/// Query of the report and export endpoints.
#[derive(Debug, Deserialize)]
pub struct UsageParams {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    format: Option<String>,
}

/// The time range of a query (default: the last 24 hours).
fn range(p: &UsageParams) -> Result<(i64, i64), String> {
    let now = crate::time::now_ms();
    let to =
        p.to.as_deref()
            .map(parse_time_ms)
            .transpose()?
            .unwrap_or(now + 1);
    let from = p
        .from
        .as_deref()
        .map(parse_time_ms)
        .transpose()?
        .unwrap_or(to - 86_400_000);
    if from > to {
        return Err("`from` is after `to`".into());
    }
    Ok((from, to))
}

async fn report(
    state: &AppState,
    p: &UsageParams,
    caller: Option<Arc<Caller>>,
    default_group_by: &str,
) -> Answer {
    let (from_ms, to_ms) = range(p).map_err(bad_request)?;
    let group_by = Dimension::parse_list(p.group_by.as_deref().unwrap_or(default_group_by))
        .map_err(bad_request)?;
    let q = ReportQuery {
        from_ms,
        to_ms,
        group_by,
        caller: caller.as_ref().map(|c| c.name.clone()),
    };
    let csv = match p.format.as_deref().unwrap_or("json") {
        "csv" => true,
        "json" => false,
        other => {
            return Err(bad_request(format!(
                "unknown format {:?} (json, csv)",
                crate::bounds::clip(other, 32)
            )));
        }
    };
    let store = state.store.as_ref().ok_or_else(no_store)?;
    let rows = store::report::run(store.as_ref(), &q)
        .await
        .map_err(store_unavailable)?;
    if !csv {
        let body = store::render_json(&q, &rows);
        // A caller's own view also shows its quotas and budgets, with what is left.
        let body = match (&caller, &state.limits) {
            (Some(c), Some(limits)) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(&body).expect("our own JSON parses");
                v["limits"] = limits.report(std::slice::from_ref(c)).await;
                v.to_string()
            }
            _ => body,
        };
        return Ok(json_response(StatusCode::OK, body));
    }
    let mut r = Response::new(Body::from(store::render_csv(&q, &rows)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(r)
}

/// `GET /admin/reports/usage?from&to&group_by&format`.
pub async fn usage_report(
    Current(state): Current,
    headers: HeaderMap,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Answer {
    require(&state, &headers, &[Role::ReportAdmin])?;
    licensed(&state, Feature::AdminReports)?;
    let p = query(q)?;
    report(&state, &p, None, "group").await
}

/// `GET /v1/router/usage`: the caller's own usage (never anyone else's).
pub async fn own_usage(
    Current(state): Current,
    headers: HeaderMap,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Answer {
    let caller = require(&state, &headers, &[Role::Caller])?;
    licensed(&state, Feature::UsageReporting)?;
    let p = query(q)?;
    let allowed = [
        "group", "model", "provider", "client", "surface", "status", "day", "hour",
    ];
    if let Some(g) = &p.group_by {
        if let Some(bad) = g
            .split(',')
            .map(str::trim)
            .find(|d| !d.is_empty() && !allowed.contains(d))
        {
            return Err(bad_request(format!(
                "group_by {:?} is not available here (allowed: {})",
                crate::bounds::clip(bad, 32),
                allowed.join(", ")
            )));
        }
    }
    report(&state, &p, Some(caller), "group").await
}

/// `GET /admin/limits`: every quota and budget with its current use per subject.
pub async fn limits(Current(state): Current, headers: HeaderMap) -> Answer {
    require(&state, &headers, &[Role::ReportAdmin])?;
    licensed(&state, Feature::AdminReports)?;
    let body = match &state.limits {
        Some(l) => l.report(state.auth.callers()).await,
        None => serde_json::json!({"backend": null, "quotas": [], "budgets": []}),
    };
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `GET /admin/license`: the license status, its payload, which features it allows and the
/// live instances — for report-admin (and admin) tokens, whatever the license includes.
pub async fn license(Current(state): Current, headers: HeaderMap) -> Answer {
    require(&state, &headers, &[Role::ReportAdmin])?;
    let live = state.license.live_instances().await;
    Ok(json_response(
        StatusCode::OK,
        state.license.report(live).to_string(),
    ))
}

/// `GET /admin/config`: the config in force (hash, source file, when it was loaded), reload
/// counts, the last reload error and settings waiting for a restart — for admin tokens.
pub async fn config(State(live): State<Arc<Live>>, headers: HeaderMap) -> Answer {
    let state = live.current();
    require(&state, &headers, &[Role::Admin])?;
    Ok(json_response(StatusCode::OK, live.report().to_string()))
}

/// `POST /admin/config/reload`: reloads the config file (admin). 200 with the new hash, or the
/// reload's errors (with key paths) while the config in force stays.
pub async fn reload(State(live): State<Arc<Live>>, headers: HeaderMap) -> Answer {
    let state = live.current();
    require(&state, &headers, &[Role::Admin])?;
    match live.reload().await {
        Ok(r) => Ok(json_response(
            StatusCode::OK,
            serde_json::json!({
                "status": "reloaded",
                "config_hash": r.hash,
                "previous_hash": r.previous_hash,
                "restart_needed": r.restart_needed,
            })
            .to_string(),
        )),
        Err(e) => {
            let (status, code) = match e {
                ReloadError::NoSource => (StatusCode::CONFLICT, "no_config_file"),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "config_invalid"),
            };
            let lines = e.lines();
            Err(json_response(
                status,
                serde_json::json!({
                    "error": {
                        "message": format!("config not reloaded; the config in force stays: {}", lines.join("; ")),
                        "type": "invalid_request_error",
                        "param": null,
                        "code": code,
                    },
                    "errors": lines,
                })
                .to_string(),
            ))
        }
    }
}

/// `GET /admin/requests/{request_id}`: every record of a request, with its attempts.
pub async fn request_detail(
    Current(state): Current,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    require(&state, &headers, &[Role::ReportAdmin])?;
    licensed(&state, Feature::AdminReports)?;
    let Path(id) = id.map_err(|_| bad_request("the request id is not valid text".into()))?;
    let store = state.store.as_ref().ok_or_else(no_store)?;
    let records = store.by_request_id(&id).await.map_err(store_unavailable)?;
    if records.is_empty() {
        return Err(refuse(Error::NotFound {
            what: format!(
                "no usage record for request {}",
                crate::bounds::clip(&id, crate::bounds::MAX_ID_LEN)
            ),
        }));
    }
    let records: Vec<serde_json::Value> = records.iter().map(record_json).collect();
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({"request_id": id, "records": records}).to_string(),
    ))
}

/// `GET /admin/diagnostics` (admin only): the support bundle (see [`diagnostics`]) as a
/// `.tar.gz`, with no secret and no content.
pub async fn diagnostics(State(live): State<Arc<Live>>, headers: HeaderMap) -> Answer {
    let state = live.current();
    require(&state, &headers, &[Role::Admin])?;
    let text = match live.source() {
        Some(p) => tokio::fs::read_to_string(p).await.ok(),
        None => None,
    };
    let check = match &text {
        None => "no config file (the config was given in memory)\n".to_string(),
        Some(t) => match crate::config::parse(t) {
            Ok(c) => format!(
                "ok ({} providers, {} groups, {} callers){}\n",
                c.providers.len(),
                c.groups.len(),
                c.callers.len(),
                c.warnings
                    .iter()
                    .map(|w| format!("\nwarning: {w}"))
                    .collect::<String>()
            ),
            Err(e) => format!("{e}\n"),
        },
    };
    let mut files = diagnostics::base_files(&state.build, text.as_deref(), &check);
    files.extend(diagnostics::live_files(&state).await);
    files.push((
        "config_status.json".into(),
        serde_json::to_vec_pretty(&live.report()).unwrap_or_default(),
    ));
    let stamp = crate::time::stamp_ms(crate::time::now_ms());
    let dir = format!("smart-router-diagnostics-{stamp}");
    let secrets = diagnostics::secrets(&state.config);
    let packed_dir = dir.clone();
    // Compressing is CPU work: not on the runtime's threads.
    let body =
        tokio::task::spawn_blocking(move || diagnostics::tar_gz(&packed_dir, &files, &secrets))
            .await
            .map_err(|_| refuse(Error::Internal))?;
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{dir}.tar.gz\"")) {
        h.insert(http::header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `GET /admin/requests/{request_id}/content` (admin only): the captured request and response
/// bodies of a request (every hop and record that captured one).
pub async fn request_content(
    Current(state): Current,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Answer {
    require(&state, &headers, &[Role::Admin])?;
    let Path(id) = id.map_err(|_| bad_request("the request id is not valid text".into()))?;
    let store = state.store.as_ref().ok_or_else(no_store)?;
    let captures = store.captures(&id).await.map_err(store_unavailable)?;
    if captures.is_empty() {
        return Err(refuse(Error::NotFound {
            what: format!(
                "no captured content for request {}",
                crate::bounds::clip(&id, crate::bounds::MAX_ID_LEN)
            ),
        }));
    }
    Ok(json_response(
        StatusCode::OK,
        serde_json::json!({"request_id": id, "captures": captures}).to_string(),
    ))
}

/// A record as JSON with its attempts and warnings expanded.
fn record_json(r: &crate::usage::UsageRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("records serialise");
    v["attempts_detail"] = serde_json::from_str(&r.attempts_json).unwrap_or_default();
    v["warnings"] = serde_json::from_str(&r.warnings).unwrap_or_default();
    v["annotations"] = serde_json::from_str(&r.annotations).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("attempts_json");
    }
    v
}

/// Column order of CSV exports.
pub const EXPORT_COLUMNS: &[&str] = &[
    "record_id",
    "request_id",
    "parent_id",
    "started_at_ms",
    "caller",
    "project",
    "team",
    "environment",
    "client",
    "surface",
    "group",
    "provider",
    "model",
    "status",
    "http_status",
    "error_kind",
    "attempts",
    "fallback",
    "stream",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "affinity_hit",
    "quota",
    "config_hash",
    "capture_policy",
    "rule",
];

/// One record as an export line (JSONL or CSV).
pub fn export_line(r: &crate::usage::UsageRecord, csv: bool) -> String {
    if !csv {
        let mut line = record_json(r).to_string();
        line.push('\n');
        return line;
    }
    let v = serde_json::to_value(r).expect("records serialise");
    let fields: Vec<String> = EXPORT_COLUMNS
        .iter()
        .map(|c| match &v[*c] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => store::report::csv_field(s),
            other => other.to_string(),
        })
        .collect();
    let mut line = fields.join(",");
    line.push('\n');
    line
}

/// `GET /admin/exports/usage?from&to&format=jsonl|csv`: streamed, in constant memory.
pub async fn export(
    Current(state): Current,
    headers: HeaderMap,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Answer {
    require(&state, &headers, &[Role::ReportAdmin])?;
    licensed(&state, Feature::Exports)?;
    let p = query(q)?;
    let (from_ms, to_ms) = range(&p).map_err(bad_request)?;
    let csv = match p.format.as_deref().unwrap_or("jsonl") {
        "csv" => true,
        "jsonl" => false,
        other => {
            return Err(bad_request(format!(
                "unknown format {:?} (jsonl, csv)",
                crate::bounds::clip(other, 32)
            )));
        }
    };
    let store = state.store.clone().ok_or_else(no_store)?;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    // The producer stops when the client goes away (its sends fail).
    tokio::spawn(async move { store.export(from_ms, to_ms, tx).await });
    let header = csv.then(|| format!("{}\n", EXPORT_COLUMNS.join(",")));
    let lines = futures_util::stream::unfold((rx, header), move |(mut rx, header)| async move {
        if let Some(h) = header {
            return Some((Ok::<_, std::io::Error>(bytes::Bytes::from(h)), (rx, None)));
        }
        match rx.recv().await? {
            Ok(r) => Some((Ok(bytes::Bytes::from(export_line(&r, csv))), (rx, None))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (rx, None))),
        }
    });
    let mut r = Response::new(Body::from_stream(lines));
    let ct = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}
