//! `GET /v1/models` and `GET /v1/models/{id}`: the groups the caller's token may use.

use crate::auth::Role;
use crate::error::Error;
use crate::reload::Current;
use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use dialects::Dialect;
use http::HeaderMap;
use serde_json::{Value, json};

/// Fixed `created` stamp for groups (they have no creation time of their own).
const CREATED: u64 = 1_700_000_000;

fn model_object(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": CREATED, "owned_by": "smart-router"})
}

/// The dialect a models request speaks: Anthropic when it carries `anthropic-version`.
fn dialect_of(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") {
        Dialect::AnthropicMessages
    } else {
        Dialect::OpenAiChat
    }
}

/// One group as an Anthropic model object.
fn anthropic_model(name: &str) -> Value {
    json!({"type": "model", "id": name, "display_name": name, "created_at": "2023-11-14T22:13:20Z"})
}

/// Lists the caller's groups in OpenAI list shape, or Anthropic's when asked with
/// `anthropic-version`.
pub(super) async fn list(Current(state): Current, headers: HeaderMap) -> Response {
    let dialect = dialect_of(&headers);
    let caller = match state.auth.require(&headers, &[Role::Caller]) {
        Ok(c) => c,
        Err(e) => return e.into_response(dialect),
    };
    let names: Vec<&str> = state
        .config
        .groups
        .iter()
        .filter(|g| caller.may_use(&g.name))
        .map(|g| g.name.as_str())
        .collect();
    if dialect == Dialect::AnthropicMessages {
        let data: Vec<Value> = names.iter().map(|n| anthropic_model(n)).collect();
        return Json(json!({
            "data": data, "has_more": false,
            "first_id": names.first(), "last_id": names.last(),
        }))
        .into_response();
    }
    let data: Vec<Value> = names.iter().map(|n| model_object(n)).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// One group, or 404 `model_not_found` when unknown or not allowed (indistinguishable).
pub(super) async fn get_one(
    Current(state): Current,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    let dialect = dialect_of(&headers);
    let id = id.map_or_else(|_| String::new(), |Path(id)| id);
    let caller = match state.auth.require(&headers, &[Role::Caller]) {
        Ok(c) => c,
        Err(e) => return e.into_response(dialect),
    };
    match state.config.group(&id) {
        Some(g) if caller.may_use(&g.name) && dialect == Dialect::AnthropicMessages => {
            Json(anthropic_model(&g.name)).into_response()
        }
        Some(g) if caller.may_use(&g.name) => Json(model_object(&g.name)).into_response(),
        _ => Error::ModelNotFound {
            group: crate::bounds::clip(&id, crate::bounds::MAX_NAME_LEN).into_owned(),
        }
        .into_response(dialect),
    }
}
