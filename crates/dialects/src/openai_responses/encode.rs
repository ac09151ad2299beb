//! Encoding Responses bodies from the canonical model: requests for `openai-responses`
//! upstreams, and responses (and the items of streams) for Responses clients.

use super::ToolShapes;
use super::types::{OutputItem, OutputText, ResponseOut, SummaryText};
use crate::canonical::{
    self, EncodeOptions, FinishReason, Part, ResponseFormat, Role, ToolChoice, Warning,
    clamp_max_tokens,
};

use serde_json::{Map, Value, json};

fn text_parts(parts: &[Part], kind: &str) -> Vec<Value> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": kind, "text": t})),
            Part::Image(src) if kind == "input_text" => {
                Some(json!({"type": "input_image", "image_url": src.to_url()}))
            }
            _ => None,
        })
        .collect()
}

/// Encodes a canonical request as a Responses request for a target.
pub fn encode_request(
    req: &canonical::Request,
    opts: &EncodeOptions<'_>,
) -> (Vec<u8>, Vec<Warning>) {
    let mut w = Vec::new();
    let mut input = Vec::new();
    for m in &req.messages {
        let mut pending: Vec<Part> = Vec::new();
        let flush = |pending: &mut Vec<Part>, input: &mut Vec<Value>, role: &str| {
            if pending.is_empty() {
                return;
            }
            let kind = if role == "assistant" {
                "output_text"
            } else {
                "input_text"
            };
            input.push(
                json!({"type": "message", "role": role, "content": text_parts(pending, kind)}),
            );
            pending.clear();
        };
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "developer",
        };
        for p in &m.parts {
            match p {
                Part::Text(_) | Part::Image(_) => pending.push(p.clone()),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    flush(&mut pending, &mut input, role);
                    input.push(json!({"type": "function_call", "call_id": id, "name": name, "arguments": arguments}));
                }
                Part::ToolResult {
                    call_id,
                    content,
                    is_error,
                } => {
                    flush(&mut pending, &mut input, role);
                    let mut text: String = content
                        .iter()
                        .filter_map(|c| {
                            if let Part::Text(t) = c {
                                Some(t.as_str())
                            } else {
                                None
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    if *is_error {
                        text = format!("Error: {text}");
                    }
                    input.push(
                        json!({"type": "function_call_output", "call_id": call_id, "output": text}),
                    );
                }
                Part::Reasoning {
                    encrypted: Some(o),
                    text,
                    ..
                } if o.dialect == crate::Dialect::OpenAiResponses => {
                    flush(&mut pending, &mut input, role);
                    let summary: Vec<Value> = if text.is_empty() {
                        vec![]
                    } else {
                        vec![json!({"type": "summary_text", "text": text})]
                    };
                    input.push(json!({"type": "reasoning", "summary": summary, "encrypted_content": o.data}));
                }
                Part::Reasoning { .. } => {
                    w.push(Warning("reasoning from an earlier turn dropped".into()))
                }
            }
        }
        flush(&mut pending, &mut input, role);
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(opts.model));
    if !req.system.is_empty() {
        out.insert("instructions".into(), json!(req.system.join("\n\n")));
    }
    out.insert("input".into(), Value::Array(input));
    out.insert("store".into(), json!(false));
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    if let Some(n) = clamp_max_tokens(req.max_tokens, opts, &mut w) {
        out.insert("max_output_tokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if !req.stop.is_empty() {
        w.push(Warning(
            "stop sequences dropped (Responses has none)".into(),
        ));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(p) = req.parallel_tool_calls {
        out.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(c) = &req.tool_choice {
        let c = match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(n) => json!({"type": "function", "name": n}),
        };
        out.insert("tool_choice".into(), c);
    }
    match &req.response_format {
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            out.insert("text".into(), json!({"format": {"type": "json_schema", "name": name, "schema": schema, "strict": strict.unwrap_or(false)}}));
        }
        Some(ResponseFormat::JsonObject) => {
            out.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        None => {}
    }
    if let Some(r) = &req.reasoning {
        match (opts.reasoning, r.effort_or_from_budget()) {
            (true, Some(e)) => {
                out.insert("reasoning".into(), json!({"effort": e, "summary": "auto"}));
                out.insert("include".into(), json!(["reasoning.encrypted_content"]));
            }
            _ => w.push(Warning(
                "reasoning settings dropped: the target has no `reasoning` capability".into(),
            )),
        }
    }
    if let Some(u) = &req.user {
        out.insert(
            "safety_identifier".into(),
            json!(u.chars().take(64).collect::<String>()),
        );
    }
    (
        serde_json::to_vec(&Value::Object(out)).expect("JSON serialises"),
        w,
    )
}

pub(super) fn call_out<'a>(
    id: String,
    call_id: &'a str,
    name: &'a str,
    arguments: &'a str,
    shapes: &'a ToolShapes,
    status: &'a str,
) -> OutputItem<'a> {
    let (namespace, inner) = match shapes.namespaced.get(name) {
        Some((ns, inner)) => (Some(ns.as_str()), inner.as_str()),
        None => (None, name),
    };
    if shapes.custom.iter().any(|c| c == name) {
        let input = serde_json::from_str::<Value>(arguments)
            .ok()
            .and_then(|v| v["input"].as_str().map(str::to_string))
            .unwrap_or_else(|| arguments.to_string());
        OutputItem::CustomToolCall {
            id,
            status,
            call_id,
            name: inner,
            input,
            namespace,
        }
    } else {
        OutputItem::FunctionCall {
            id,
            status,
            call_id,
            name: inner,
            arguments,
            namespace,
        }
    }
}

pub(super) fn message_out<'a>(id: String, text: &'a str, status: &'a str) -> OutputItem<'a> {
    OutputItem::Message {
        id,
        status,
        role: "assistant",
        content: [OutputText {
            text,
            annotations: [],
        }],
    }
}

pub(super) fn reasoning_out<'a>(
    id: String,
    summary: &'a str,
    encrypted: Option<&'a str>,
) -> OutputItem<'a> {
    OutputItem::Reasoning {
        id,
        summary: if summary.is_empty() {
            vec![]
        } else {
            vec![SummaryText { text: summary }]
        },
        encrypted_content: encrypted,
    }
}

/// A response id in Responses' form.
pub fn response_id(id: &str) -> String {
    if id.starts_with("resp_") {
        id.to_string()
    } else {
        format!(
            "resp_{}",
            id.trim_start_matches("chatcmpl-")
                .trim_start_matches("msg_")
        )
    }
}

/// Encodes a canonical response as a Responses response for the caller.
pub fn encode_response(
    r: &canonical::Response,
    model: &str,
    created: u64,
    shapes: &ToolShapes,
) -> Vec<u8> {
    let rid = response_id(&r.id);
    let mut output = Vec::new();
    let mut text = String::new();
    for (i, p) in r.parts.iter().enumerate() {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                output.push(call_out(
                    format!("fc_{rid}_{i}"),
                    id,
                    name,
                    arguments,
                    shapes,
                    "completed",
                ));
            }
            Part::Reasoning {
                text: t, encrypted, ..
            } => {
                let enc = encrypted
                    .as_ref()
                    .filter(|o| o.dialect == crate::Dialect::OpenAiResponses)
                    .map(|o| o.data.as_str());
                output.push(reasoning_out(format!("rs_{rid}_{i}"), t, enc));
            }
            _ => {}
        }
    }
    if !text.is_empty() {
        let pos = output
            .iter()
            .position(|o| !o.is_reasoning())
            .unwrap_or(output.len());
        output.insert(pos, message_out(format!("msg_{rid}"), &text, "completed"));
    }
    let status = if r.finish == FinishReason::Length {
        "incomplete"
    } else {
        "completed"
    };
    let out = ResponseOut::new(&rid, model, created, status, &output, Some(&r.usage));
    serde_json::to_vec(&out).expect("JSON serialises")
}
