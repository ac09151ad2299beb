//! The fake's Anthropic Messages endpoint (`/v1/messages`, `/v1/messages/count_tokens`).

use crate::agent::{Decision, ToolView, Turn, decide};
use crate::script::{Script, ScriptUsage, example_from_schema};
use crate::{Shared, prelude, sse_response, with_headers};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dialects::anthropic_messages::error::encode_error;
use dialects::sse;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = encode_error(status.as_u16(), message);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The text of a content value, without the `<system-reminder>` blocks agents add.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the agent logic sees in a Messages request.
fn turn(req: &Value) -> Turn {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let is_tool_result = |m: &Value| {
        m["role"] == "user"
            && m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    };
    let system_messages = messages
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| text_of(&m["content"]));
    Turn {
        system: std::iter::once(text_of(&req["system"]))
            .chain(system_messages)
            .collect::<Vec<_>>()
            .join("\n"),
        last_user: messages
            .iter()
            .rev()
            .filter(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .find(|t| !t.trim().is_empty())
            .unwrap_or_default(),
        tools: req["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t.get("input_schema").is_some())
            .map(|t| ToolView {
                name: t["name"].as_str().unwrap_or("").to_string(),
                schema: t["input_schema"].clone(),
            })
            .collect(),
        has_tool_result: messages.last().is_some_and(is_tool_result),
        tools_off: req.pointer("/tool_choice/type") == Some(&json!("none")),
        forced: req
            .pointer("/tool_choice/name")
            .and_then(Value::as_str)
            .map(str::to_string),
        images: messages
            .iter()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .filter(|b| b["type"] == "image")
            .count(),
    }
}

/// The answer's content blocks, stop reason and usage.
fn answer(req: &Value, script: &Script, body_len: usize) -> (Vec<Value>, &'static str, Value) {
    let mut blocks = Vec::new();
    for (i, c) in script.tool_calls.iter().enumerate() {
        let schema = req["tools"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == c.name.as_str()))
            .map(|t| t["input_schema"].clone())
            .unwrap_or(Value::Null);
        let input = c
            .arguments
            .clone()
            .unwrap_or_else(|| example_from_schema(&schema));
        blocks.push(json!({"type": "tool_use", "id": format!("toolu_fake{i}"), "name": c.name, "input": input}));
    }
    if blocks.is_empty() {
        let decision = match &script.text {
            Some(t) => Decision::Text(t.clone()),
            None => decide(&turn(req)),
        };
        match decision {
            Decision::Text(t) => blocks.push(json!({"type": "text", "text": t})),
            Decision::Call { name, input } => {
                blocks.push(
                    json!({"type": "tool_use", "id": "toolu_fake0", "name": name, "input": input}),
                );
            }
        }
    }
    let stop = if blocks.iter().any(|b| b["type"] == "tool_use") {
        "tool_use"
    } else {
        "end_turn"
    };
    let out_len: usize = blocks.iter().map(|b| b.to_string().len()).sum();
    let u = script.usage.unwrap_or(ScriptUsage {
        input: (body_len / 4) as u64,
        output: (out_len / 4).max(1) as u64,
        ..ScriptUsage::default()
    });
    let usage = json!({
        "input_tokens": u.input.saturating_sub(u.cached),
        "output_tokens": u.output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached,
    });
    (blocks, stop, usage)
}

/// `POST /v1/messages`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (script, guard) =
        match prelude(&shared, &method, &uri, &headers, &body, error_response).await {
            Ok(p) => p,
            Err(resp) => return resp,
        };
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid request: body is not a JSON object",
            );
        }
    };
    if req.get("max_tokens").is_none() {
        return error_response(StatusCode::BAD_REQUEST, "max_tokens: Field required");
    }
    let (blocks, stop, usage) = answer(&req, &script, body.len());
    let id = format!(
        "msg_fake{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let model = req["model"].as_str().unwrap_or("").to_string();
    if req["stream"] == json!(true) {
        let events = stream_events(&id, &model, &blocks, stop, &usage, &script);
        return sse_response(events, &script, guard);
    }
    let msg = json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": blocks,
        "stop_reason": stop, "stop_sequence": null, "usage": usage,
    });
    guard.complete();
    with_headers(
        (
            [(header::CONTENT_TYPE, "application/json")],
            msg.to_string(),
        )
            .into_response(),
        &script,
    )
}

fn ev(name: &str, data: Value) -> Bytes {
    sse::encode(Some(name), data.to_string().as_bytes())
}

/// The full Messages event sequence for an answer.
fn stream_events(
    id: &str,
    model: &str,
    blocks: &[Value],
    stop: &str,
    usage: &Value,
    script: &Script,
) -> Vec<Bytes> {
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut out = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for (i, b) in blocks.iter().enumerate() {
        if b["type"] == "text" {
            out.push(ev("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
            let text = b["text"].as_str().unwrap_or("");
            let pieces: Vec<String> = script
                .chunks
                .clone()
                .unwrap_or_else(|| text.split_inclusive(' ').map(str::to_string).collect());
            for p in pieces {
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": p}})));
            }
        } else {
            let start = json!({"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}});
            out.push(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": start}),
            ));
            let args = b["input"].to_string();
            for piece in args.as_bytes().chunks(10) {
                let p = String::from_utf8_lossy(piece);
                out.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": p}})));
            }
        }
        out.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": usage["output_tokens"]}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// `POST /v1/messages/count_tokens`: about four bytes per token, plus images (scripts apply:
/// delays, errors, raw bodies).
pub(crate) async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let guard = match prelude(&shared, &method, &uri, &headers, &body, error_response).await {
        Ok((_, guard)) => guard,
        Err(resp) => return resp,
    };
    guard.complete();
    let n = body.len() / 4;
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"input_tokens": n}).to_string(),
    )
        .into_response()
}
