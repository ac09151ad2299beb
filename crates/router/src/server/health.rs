//! `/livez`, `/readyz`, `/version`: no token needed, nothing about callers, groups or providers.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

/// Claude Code's connectivity check (`HEAD /api/hello` on its base URL): answered without auth.
pub async fn hello() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The process is up.
pub async fn livez() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready to take traffic: config loaded and not draining. Names the failing check otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "unavailable", "checks": {"config": "ok", "draining": "failing"}}),
            ),
        )
            .into_response();
    }
    Json(json!({"status": "ok", "checks": {"config": "ok", "draining": "ok"}})).into_response()
}

/// Version, commit, build date and config hash.
pub async fn version(State(state): State<AppState>) -> Response {
    let b = &state.build;
    Json(json!({
        "version": b.version,
        "commit": b.commit,
        "build_date": b.build_date,
        "config_hash": state.config.hash,
    }))
    .into_response()
}
