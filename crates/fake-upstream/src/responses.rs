//! The fake's OpenAI Responses endpoint (`/v1/responses`).

use crate::agent::{Decision, ToolView, Turn, decide};
use crate::script::{Script, ScriptUsage, example_from_schema};
use crate::{Shared, prelude, sse_response, with_headers};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dialects::openai_chat::error::encode_error;
use dialects::sse;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = encode_error(status.as_u16(), message, None, None);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Tools by name with their schema and whether they are custom (freeform).
fn tools(req: &Value) -> Vec<(ToolView, bool)> {
    let mut out = Vec::new();
    for t in req["tools"].as_array().into_iter().flatten() {
        match t["type"].as_str().unwrap_or("function") {
            "function" => out.push((
                ToolView {
                    name: t["name"].as_str().unwrap_or("").into(),
                    schema: t["parameters"].clone(),
                },
                false,
            )),
            "custom" => out.push((
                ToolView {
                    name: t["name"].as_str().unwrap_or("").into(),
                    schema: json!({"properties": {"input": {"type": "string"}}}),
                },
                true,
            )),
            _ => {}
        }
    }
    out
}

/// What the agent logic sees in a Responses request.
fn turn(req: &Value) -> Turn {
    let items: Vec<Value> = match &req["input"] {
        Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    let is_msg = |i: &Value, roles: &[&str]| {
        i.get("role")
            .and_then(Value::as_str)
            .is_some_and(|r| roles.contains(&r))
            && i.get("type").and_then(Value::as_str).unwrap_or("message") == "message"
    };
    let mut system = req["instructions"].as_str().unwrap_or("").to_string();
    for i in items.iter().filter(|i| is_msg(i, &["developer", "system"])) {
        system.push('\n');
        system.push_str(&text_of(&i["content"]));
    }
    Turn {
        system,
        last_user: items
            .iter()
            .rev()
            .filter(|i| is_msg(i, &["user"]))
            .map(|i| text_of(&i["content"]))
            .find(|t| !t.starts_with("<environment_context>") && !t.trim().is_empty())
            .unwrap_or_default(),
        tools: tools(req).into_iter().map(|(t, _)| t).collect(),
        has_tool_result: items.last().is_some_and(|i| {
            matches!(
                i["type"].as_str(),
                Some("function_call_output" | "custom_tool_call_output")
            )
        }),
        tools_off: req["tool_choice"] == "none",
        forced: req
            .pointer("/tool_choice/name")
            .and_then(Value::as_str)
            .map(str::to_string),
        images: items
            .iter()
            .filter_map(|i| i["content"].as_array())
            .flatten()
            .filter(|p| p["type"] == "input_image")
            .count(),
    }
}

/// The output items of the answer and its usage.
fn answer(req: &Value, script: &Script, body_len: usize, rid: &str) -> (Vec<Value>, Value) {
    let known = tools(req);
    let call = |i: usize, name: &str, input: Value| {
        let custom = known.iter().any(|(t, c)| *c && t.name == name);
        if custom {
            let text = input["input"]
                .as_str()
                .map_or_else(|| input.to_string(), str::to_string);
            json!({"id": format!("ctc_{rid}_{i}"), "type": "custom_tool_call", "status": "completed",
                   "call_id": format!("call_fake{i}"), "name": name, "input": text})
        } else {
            json!({"id": format!("fc_{rid}_{i}"), "type": "function_call", "status": "completed",
                   "call_id": format!("call_fake{i}"), "name": name, "arguments": input.to_string()})
        }
    };
    let mut items: Vec<Value> = script
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let schema = known
                .iter()
                .find(|(t, _)| t.name == c.name)
                .map(|(t, _)| t.schema.clone())
                .unwrap_or(Value::Null);
            call(
                i,
                &c.name,
                c.arguments
                    .clone()
                    .unwrap_or_else(|| example_from_schema(&schema)),
            )
        })
        .collect();
    if items.is_empty() {
        let schema_answer = req
            .pointer("/text/format")
            .filter(|f| f["type"] == "json_schema")
            .map(|f| example_from_schema(&f["schema"]).to_string());
        let decision = match (&script.text, schema_answer) {
            (Some(t), _) => Decision::Text(t.clone()),
            (None, Some(a)) => Decision::Text(a),
            (None, None) => decide(&turn(req)),
        };
        items.push(match decision {
            Decision::Text(t) => json!({"id": format!("msg_{rid}"), "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": t, "annotations": []}]}),
            Decision::Call { name, input } => call(0, &name, input),
        });
    }
    let out_len: usize = items.iter().map(|i| i.to_string().len()).sum();
    let u = script.usage.unwrap_or(ScriptUsage {
        input: (body_len / 4) as u64,
        output: (out_len / 4).max(1) as u64,
        ..ScriptUsage::default()
    });
    let usage = json!({"input_tokens": u.input, "input_tokens_details": {"cached_tokens": u.cached},
        "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": u.reasoning}, "total_tokens": u.input + u.output});
    (items, usage)
}

fn response_object(
    rid: &str,
    model: &str,
    status: &str,
    output: &[Value],
    usage: Option<&Value>,
) -> Value {
    json!({"id": rid, "object": "response", "created_at": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
           "status": status, "model": model, "output": output, "usage": usage, "error": null, "incomplete_details": null})
}

/// `POST /v1/responses`.
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
    let rid = format!(
        "resp_fake{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let model = req["model"].as_str().unwrap_or("").to_string();
    let (items, usage) = answer(&req, &script, body.len(), &rid);
    if req["stream"] == json!(true) {
        let events = stream_events(&rid, &model, &items, &usage, &script);
        return sse_response(events, &script, guard);
    }
    guard.complete();
    let r = response_object(&rid, &model, "completed", &items, Some(&usage));
    with_headers(
        ([(header::CONTENT_TYPE, "application/json")], r.to_string()).into_response(),
        &script,
    )
}

/// The full Responses event sequence for an answer.
fn stream_events(
    rid: &str,
    model: &str,
    items: &[Value],
    usage: &Value,
    script: &Script,
) -> Vec<Bytes> {
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut ev = |mut data: Value| {
        data["sequence_number"] = json!(seq);
        seq += 1;
        let name = data["type"].as_str().unwrap_or("").to_string();
        out.push(sse::encode(Some(&name), data.to_string().as_bytes()));
    };
    ev(
        json!({"type": "response.created", "response": response_object(rid, model, "in_progress", &[], None)}),
    );
    ev(
        json!({"type": "response.in_progress", "response": response_object(rid, model, "in_progress", &[], None)}),
    );
    for (i, item) in items.iter().enumerate() {
        let id = item["id"].clone();
        match item["type"].as_str() {
            Some("message") => {
                let text = item["content"][0]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["content"] = json!([]);
                ev(json!({"type": "response.output_item.added", "output_index": i, "item": added}));
                ev(
                    json!({"type": "response.content_part.added", "item_id": id, "output_index": i, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                let pieces: Vec<String> = script
                    .chunks
                    .clone()
                    .unwrap_or_else(|| text.split_inclusive(' ').map(str::to_string).collect());
                for p in pieces {
                    ev(
                        json!({"type": "response.output_text.delta", "item_id": id, "output_index": i, "content_index": 0, "delta": p, "logprobs": []}),
                    );
                }
                ev(
                    json!({"type": "response.output_text.done", "item_id": id, "output_index": i, "content_index": 0, "text": text}),
                );
                ev(
                    json!({"type": "response.content_part.done", "item_id": id, "output_index": i, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
            }
            Some("function_call") => {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["arguments"] = json!("");
                ev(json!({"type": "response.output_item.added", "output_index": i, "item": added}));
                let args = item["arguments"].as_str().unwrap_or("").to_string();
                for piece in args.as_bytes().chunks(10) {
                    ev(
                        json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": i, "delta": String::from_utf8_lossy(piece)}),
                    );
                }
                ev(
                    json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": i, "arguments": args}),
                );
            }
            _ => {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["input"] = json!("");
                ev(json!({"type": "response.output_item.added", "output_index": i, "item": added}));
                ev(
                    json!({"type": "response.custom_tool_call_input.delta", "item_id": id, "output_index": i, "delta": item["input"]}),
                );
                ev(
                    json!({"type": "response.custom_tool_call_input.done", "item_id": id, "output_index": i, "input": item["input"]}),
                );
            }
        }
        ev(json!({"type": "response.output_item.done", "output_index": i, "item": item}));
    }
    ev(
        json!({"type": "response.completed", "response": response_object(rid, model, "completed", items, Some(usage))}),
    );
    out
}
