//! `GET /v1/models` and `GET /v1/models/{id}`: the groups the caller's token may use.

use super::AppState;
use crate::auth::{AuthFailure, Caller, Role};
use crate::error::Error;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use dialects::Dialect;
use http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;

/// Fixed `created` stamp for groups (they have no creation time of their own).
const CREATED: u64 = 1_700_000_000;

/// Authenticates a model-traffic caller.
pub(crate) fn require_caller(state: &AppState, headers: &HeaderMap) -> Result<Arc<Caller>, Error> {
    let caller = state.auth.authenticate(headers).map_err(|f| match f {
        AuthFailure::Missing => Error::MissingToken,
        AuthFailure::Unknown => Error::InvalidToken,
    })?;
    if !caller.has(Role::Caller) {
        return Err(Error::Forbidden {
            role: Role::Caller.as_str(),
        });
    }
    Ok(caller)
}

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": CREATED, "owned_by": "smart-router"})
}

/// Lists the caller's groups in OpenAI list shape.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let caller = match require_caller(&state, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(Dialect::OpenAiChat),
    };
    let data: Vec<Value> = state
        .config
        .groups
        .iter()
        .filter(|g| caller.may_use(&g.name))
        .map(|g| model_object(&g.name))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// One group, or 404 `model_not_found` when unknown or not allowed (indistinguishable).
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match require_caller(&state, &headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(Dialect::OpenAiChat),
    };
    match state.config.group(&id) {
        Some(g) if caller.may_use(&g.name) => Json(model_object(&g.name)).into_response(),
        _ => Error::ModelNotFound { group: id }.into_response(Dialect::OpenAiChat),
    }
}
