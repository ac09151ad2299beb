//! `/livez`, `/readyz`, `/version`: no token needed, nothing about callers, groups or providers.

use crate::reload::Current;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Claude Code's connectivity check (`HEAD /api/hello` on its base URL): answered without auth.
pub(super) async fn hello() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The process is up.
pub(super) async fn livez() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready to take traffic: config loaded, not draining, and usage can be kept (the store
/// answers, or the spool has room). Names the failing check otherwise.
pub(super) async fn readyz(Current(state): Current) -> Response {
    let draining = state.draining();
    let usage_ok = state.recorder.writer().is_none_or(|w| {
        w.stats.store_up.load(Ordering::Relaxed) || !w.stats.spool_full.load(Ordering::Relaxed)
    });
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    let checks = json!({
        "config": "ok",
        "draining": word(!draining),
        "usage_store": word(usage_ok),
    });
    if draining || !usage_ok {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "checks": checks})),
        )
            .into_response();
    }
    Json(json!({"status": "ok", "checks": checks})).into_response()
}

/// Version, commit, build date, config hash and the license status word.
pub(super) async fn version(Current(state): Current) -> Response {
    let b = &state.build;
    Json(json!({
        "version": b.version,
        "commit": b.commit,
        "build_date": b.build_date,
        "config_hash": state.config.hash,
        "license": state.license.status().as_str(),
    }))
    .into_response()
}
