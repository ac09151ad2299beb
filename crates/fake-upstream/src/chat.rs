//! The fake's OpenAI Chat Completions endpoint.

use crate::agent::{Decision, ToolView, Turn, decide};
use crate::script::{Script, ScriptUsage, example_from_schema};
use crate::{Shared, prelude, sse_response, with_headers};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use dialects::openai_chat::types::{
    Choice, Chunk, ChunkChoice, CompletionTokensDetails, Delta, FunctionCall, FunctionCallDelta,
    Message, PromptTokensDetails, Request, ToolCall, ToolCallDelta, Usage,
};
use dialects::openai_chat::{Response as ChatResponse, error::encode_error};
use dialects::sse;
use serde_json::Value;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the fake will answer, decided from the script and the request.
struct Plan {
    text: Option<String>,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = encode_error(status.as_u16(), message, None, None);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /v1/chat/completions`.
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
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &format!("invalid request: {e}")),
    };
    let plan = plan(&req, &script, body.len());
    let id = format!("chatcmpl-fake{:x}", now_secs());
    if req.stream == Some(true) {
        let include_usage = req.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true);
        let events = stream_events(&id, &req.model, &plan, &script, include_usage);
        return sse_response(events, &script, guard);
    }
    let resp = ChatResponse {
        id,
        object: "chat.completion".into(),
        created: now_secs(),
        model: req.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: Message {
                role: "assistant".into(),
                content: plan
                    .text
                    .clone()
                    .map(dialects::openai_chat::types::Content::Text),
                tool_calls: (!plan.tool_calls.is_empty()).then(|| plan.tool_calls.clone()),
                tool_call_id: None,
                extra: serde_json::Map::from_iter([("refusal".to_string(), Value::Null)]),
            },
            finish_reason: Some(
                if plan.tool_calls.is_empty() {
                    "stop"
                } else {
                    "tool_calls"
                }
                .into(),
            ),
        }],
        usage: Some(plan.usage),
        extra: serde_json::Map::from_iter([(
            "system_fingerprint".to_string(),
            Value::from("fp_fake"),
        )]),
    };
    guard.complete();
    with_headers(
        (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&resp).expect("a response serialises"),
        )
            .into_response(),
        &script,
    )
}

/// What the agent logic sees in a Chat request.
fn turn(req: &Request) -> Turn {
    let text = |m: &Message| m.content.as_ref().map(|c| c.text()).unwrap_or_default();
    Turn {
        system: req
            .messages
            .iter()
            .filter(|m| m.role == "system" || m.role == "developer")
            .map(text)
            .collect::<Vec<_>>()
            .join("\n"),
        last_user: req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(text)
            .unwrap_or_default(),
        tools: req
            .tools
            .iter()
            .flatten()
            .map(|t| ToolView {
                name: t.function.name.clone(),
                schema: t.function.parameters.clone().unwrap_or(Value::Null),
            })
            .collect(),
        has_tool_result: req.messages.last().is_some_and(|m| m.role == "tool"),
        tools_off: req.tool_choice.as_ref().and_then(Value::as_str) == Some("none"),
        forced: req
            .tool_choice
            .as_ref()
            .and_then(|c| c.pointer("/function/name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        images: req
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| c.image_count())
            .sum(),
    }
}

/// Decides text or tool calls, and usage.
fn plan(req: &Request, script: &Script, body_len: usize) -> Plan {
    let tools = req.tools.as_deref().unwrap_or(&[]);
    let mut tool_calls: Vec<ToolCall> = script
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let schema = tools
                .iter()
                .find(|t| t.function.name == c.name)
                .and_then(|t| t.function.parameters.clone());
            let args = c
                .arguments
                .clone()
                .unwrap_or_else(|| example_from_schema(&schema.unwrap_or(Value::Null)));
            tool_call(i, &c.name, &args)
        })
        .collect();
    let schema_answer = req
        .response_format
        .as_ref()
        .filter(|f| f.kind == "json_schema")
        .and_then(|f| f.json_schema.as_ref())
        .map(|s| example_from_schema(s.get("schema").unwrap_or(&Value::Null)).to_string());
    let text = if !tool_calls.is_empty() {
        None
    } else if let Some(t) = &script.text {
        Some(t.clone())
    } else if let Some(answer) = schema_answer {
        Some(answer)
    } else {
        match decide(&turn(req)) {
            Decision::Text(t) => Some(t),
            Decision::Call { name, input } => {
                tool_calls.push(tool_call(0, &name, &input));
                None
            }
        }
    };
    let out_len = text.as_ref().map_or(0, |t| t.len())
        + tool_calls
            .iter()
            .map(|c| c.function.arguments.len())
            .sum::<usize>();
    let su = script.usage.unwrap_or(ScriptUsage {
        input: (body_len / 4) as u64,
        output: (out_len / 4).max(1) as u64,
        ..ScriptUsage::default()
    });
    Plan {
        text,
        tool_calls,
        usage: Usage {
            prompt_tokens: su.input,
            completion_tokens: su.output,
            total_tokens: su.input + su.output,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: su.cached,
            }),
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: su.reasoning,
            }),
        },
    }
}

fn tool_call(i: usize, name: &str, args: &Value) -> ToolCall {
    ToolCall {
        id: format!("call_fake{i}"),
        kind: "function".into(),
        function: FunctionCall {
            name: name.to_string(),
            arguments: args.to_string(),
        },
    }
}

/// The SSE events of a streamed answer, in order.
fn stream_events(
    id: &str,
    model: &str,
    plan: &Plan,
    script: &Script,
    include_usage: bool,
) -> Vec<Bytes> {
    let chunk = |delta: Delta, finish: Option<&str>| Chunk {
        id: id.to_string(),
        object: "chat.completion.chunk".into(),
        created: now_secs(),
        model: model.to_string(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish.map(str::to_string),
        }],
        usage: None,
    };
    let enc = |c: &Chunk| sse::encode(None, &serde_json::to_vec(c).expect("a chunk serialises"));
    let mut out = vec![enc(&chunk(
        Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        },
        None,
    ))];
    if let Some(text) = &plan.text {
        let pieces: Vec<String> = script
            .chunks
            .clone()
            .unwrap_or_else(|| text.split_inclusive(' ').map(str::to_string).collect());
        for p in pieces {
            out.push(enc(&chunk(
                Delta {
                    content: Some(p),
                    ..Delta::default()
                },
                None,
            )));
        }
    }
    for (i, call) in plan.tool_calls.iter().enumerate() {
        let index = i as u32;
        out.push(enc(&chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: Some(call.id.clone()),
                    kind: Some("function".into()),
                    function: FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(String::new()),
                    },
                }]),
                ..Delta::default()
            },
            None,
        )));
        let args = call.function.arguments.as_bytes();
        for piece in args.chunks(8) {
            out.push(enc(&chunk(
                Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionCallDelta {
                            name: None,
                            arguments: Some(String::from_utf8_lossy(piece).into_owned()),
                        },
                    }]),
                    ..Delta::default()
                },
                None,
            )));
        }
    }
    let finish = if plan.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    out.push(enc(&chunk(Delta::default(), Some(finish))));
    if include_usage {
        let mut c = chunk(Delta::default(), None);
        c.choices.clear();
        c.usage = Some(plan.usage);
        out.push(enc(&c));
    }
    out.push(sse::encode(None, b"[DONE]"));
    out
}
