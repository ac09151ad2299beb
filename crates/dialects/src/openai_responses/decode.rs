//! Decoding Responses bodies: the passthrough inspection and full decoding into the canonical
//! model for translation.

use super::NAMESPACE_SEPARATOR;
use crate::DecodeError;
use crate::canonical::{
    self, FinishReason, ImageSource, Needs, Opaque, Part, Reasoning, RequestSummary,
    ResponseFormat, Role, Tool, ToolChoice, Usage, Warning, push_message,
};
use crate::scan::{
    Inspected, MessageRules, Stats, content_stats, model_of, object_start, raw_u32, span_of,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow, default, deserialize_with = "crate::scan::always_some")]
    model: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "input")]
    input: Option<Stats>,
    #[serde(default)]
    instructions: Option<Stats>,
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(default)]
    prompt_cache_key: Option<String>,
    #[serde(default)]
    text: Option<TextView>,
    #[serde(borrow, default)]
    reasoning: Option<ReasoningView<'a>>,
}

#[derive(Deserialize)]
struct ReasoningView<'a> {
    #[serde(borrow, default)]
    effort: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TextView {
    #[serde(default)]
    format: Option<Value>,
}

/// `input`: a string or an array of items (any shapes: items are many and evolve).
const INPUT: MessageRules = MessageRules {
    roles: &[],
    typed_blocks: false,
};

fn input<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Stats>, D::Error> {
    content_stats(d, &INPUT)
}

/// Inspects a Responses request in one borrowed parse.
pub fn inspect_request(body: &[u8]) -> Result<Inspected, DecodeError> {
    let object_start = object_start(body)?;
    let view: RequestView<'_> = serde_json::from_slice(body)?;
    let group = model_of(view.model)?;
    let input = view
        .input
        .ok_or(DecodeError::MissingField { field: "input" })?;
    let mut stats = view.instructions.unwrap_or_default();
    stats.add(&input);
    let tools = view.tools.unwrap_or_default();
    Ok(Inspected {
        dialect: crate::Dialect::OpenAiResponses,
        summary: RequestSummary {
            group,
            stream: view.stream.unwrap_or(false),
            needs: Needs {
                tools: !tools.is_empty(),
                images: stats.images > 0,
                json_schema: view
                    .text
                    .and_then(|t| t.format)
                    .is_some_and(|f| f["type"] == "json_schema"),
            },
            estimated_prompt_tokens: stats.estimate_with_tools(&tools),
            max_output_tokens: raw_u32(view.max_output_tokens, "max_output_tokens")?,
            session_key: view.prompt_cache_key.filter(|k| !k.is_empty()),
            reasoning_effort: view
                .reasoning
                .and_then(|r| r.effort)
                .as_deref()
                .map(crate::canonical::effort_level),
        },
        model_span: span_of(body, view.model.expect("model_of checked it")),
        stream_options: None,
        include_usage: false,
        object_start,
        max_tokens_span: view.max_output_tokens.map(|r| span_of(body, r)),
    })
}

/// Canonical usage from a Responses `usage` object.
pub fn usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("/input_tokens"),
        cached_input_tokens: n("/input_tokens_details/cached_tokens"),
        cache_write_tokens: 0,
        output_tokens: n("/output_tokens"),
        reasoning_tokens: n("/output_tokens_details/reasoning_tokens"),
    }
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    usage: Option<Value>,
}

/// Reads `usage` from a whole response body.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, DecodeError> {
    object_start(body)?;
    let view: UsageView = serde_json::from_slice(body)?;
    Ok(view.usage.filter(|u| u.is_object()).map(|u| usage(&u)))
}

/// Canonical name of a tool call, flattening a namespace.
fn call_name(item: &Value) -> String {
    let name = item["name"].as_str().unwrap_or("");
    match item.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
        _ => name.to_string(),
    }
}

/// Content parts of a message (input or output).
fn content(c: &Value, w: &mut Vec<Warning>) -> Vec<Part> {
    match c {
        Value::String(s) => vec![Part::Text(s.clone())],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p["type"].as_str().unwrap_or("") {
                "input_text" | "output_text" | "text" => {
                    Some(Part::Text(p["text"].as_str().unwrap_or("").to_string()))
                }
                "input_image" => match p["image_url"].as_str() {
                    Some(url) => Some(Part::Image(ImageSource::from_url(url))),
                    None => {
                        w.push(Warning("input_image by file_id dropped".into()));
                        None
                    }
                },
                "refusal" => Some(Part::Text(p["refusal"].as_str().unwrap_or("").to_string())),
                other => {
                    w.push(Warning(format!("content part of type {other} dropped")));
                    None
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A tool output (string or parts).
fn tool_output(o: &Value, w: &mut Vec<Warning>) -> Vec<Part> {
    match o {
        Value::String(s) => vec![Part::Text(s.clone())],
        Value::Array(_) => content(o, w),
        Value::Object(m) => vec![Part::Text(
            m.get("content")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )],
        _ => Vec::new(),
    }
}

/// Decodes one input item into the request being built.
fn item(it: &Value, out: &mut canonical::Request, w: &mut Vec<Warning>) {
    let kind = it["type"].as_str().unwrap_or(if it.get("role").is_some() {
        "message"
    } else {
        ""
    });
    match kind {
        "message" => {
            let parts = content(&it["content"], w);
            match it["role"].as_str().unwrap_or("user") {
                "system" | "developer" if out.messages.is_empty() => {
                    out.system.extend(
                        parts
                            .into_iter()
                            .filter_map(|p| if let Part::Text(t) = p { Some(t) } else { None }),
                    );
                }
                "system" | "developer" => push_message(&mut out.messages, Role::System, parts),
                "assistant" => push_message(&mut out.messages, Role::Assistant, parts),
                _ => push_message(&mut out.messages, Role::User, parts),
            }
        }
        "function_call" => push_message(
            &mut out.messages,
            Role::Assistant,
            vec![Part::ToolCall {
                id: it["call_id"].as_str().unwrap_or("").to_string(),
                name: call_name(it),
                arguments: it["arguments"].as_str().unwrap_or("{}").to_string(),
            }],
        ),
        "custom_tool_call" => push_message(
            &mut out.messages,
            Role::Assistant,
            vec![Part::ToolCall {
                id: it["call_id"].as_str().unwrap_or("").to_string(),
                name: call_name(it),
                arguments: json!({"input": it["input"].as_str().unwrap_or("")}).to_string(),
            }],
        ),
        "function_call_output" | "custom_tool_call_output" => {
            let result = Part::ToolResult {
                call_id: it["call_id"].as_str().unwrap_or("").to_string(),
                content: tool_output(&it["output"], w),
                is_error: false,
            };
            push_message(&mut out.messages, Role::User, vec![result]);
        }
        "reasoning" => {
            let text = it["summary"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let encrypted = it["encrypted_content"].as_str().map(|d| Opaque {
                dialect: crate::Dialect::OpenAiResponses,
                data: d.to_string(),
            });
            push_message(
                &mut out.messages,
                Role::Assistant,
                vec![Part::Reasoning {
                    text,
                    signature: None,
                    encrypted,
                }],
            );
        }
        other => w.push(Warning(format!("input item of type {other} dropped"))),
    }
}

/// Canonical tools of a Responses `tools` array (namespaces flattened, hosted tools dropped).
fn tools(v: &Value, out: &mut Vec<Tool>, namespace: Option<&str>, w: &mut Vec<Warning>) {
    for t in v.as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("");
        let full = match namespace {
            Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
            None => name.to_string(),
        };
        let description = t["description"].as_str().map(str::to_string);
        match t["type"].as_str().unwrap_or("function") {
            "function" => out.push(Tool {
                name: full,
                description,
                parameters: t
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
                namespace: namespace.map(str::to_string),
                ..Tool::default()
            }),
            "custom" => {
                let mut desc = description.unwrap_or_default();
                if let Some(def) = t.pointer("/format/definition").and_then(Value::as_str) {
                    desc.push_str(&format!("\n\nThe input must follow this grammar:\n{def}"));
                }
                out.push(Tool {
                    name: full,
                    description: Some(desc),
                    parameters: json!({"type": "object", "properties": {"input": {"type": "string", "description": "The raw tool input."}}, "required": ["input"]}),
                    custom: true,
                    namespace: namespace.map(str::to_string),
                });
            }
            "namespace" => tools(&t["tools"], out, Some(name), w),
            other => w.push(Warning(format!("hosted tool {other} dropped"))),
        }
    }
}

/// Decodes a Responses request into the canonical model.
pub fn decode_request(body: &[u8]) -> Result<(canonical::Request, Vec<Warning>), DecodeError> {
    object_start(body)?;
    let v: Value = serde_json::from_slice(body)?;
    if v.get("previous_response_id").is_some_and(|p| !p.is_null()) {
        return Err(DecodeError::InvalidField {
            field: "previous_response_id",
            reason: "a stored response cannot be continued through a translated upstream; resend the conversation in `input`, or use a group whose targets are openai-responses providers",
        });
    }
    let mut w = Vec::new();
    let mut out = canonical::Request {
        model: v["model"].as_str().unwrap_or("").to_string(),
        stream: v["stream"].as_bool().unwrap_or(false),
        max_tokens: v["max_output_tokens"]
            .as_u64()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        temperature: v["temperature"].as_f64(),
        top_p: v["top_p"].as_f64(),
        parallel_tool_calls: v["parallel_tool_calls"].as_bool(),
        ..canonical::Request::default()
    };
    if let Some(i) = v["instructions"].as_str().filter(|i| !i.is_empty()) {
        out.system.push(i.to_string());
    }
    match &v["input"] {
        Value::String(s) => out.messages.push(canonical::Message {
            role: Role::User,
            parts: vec![Part::Text(s.clone())],
        }),
        Value::Array(items) => items.iter().for_each(|it| item(it, &mut out, &mut w)),
        _ => return Err(DecodeError::MissingField { field: "input" }),
    }
    tools(&v["tools"], &mut out.tools, None, &mut w);
    out.tool_choice = match &v["tool_choice"] {
        Value::String(s) if s == "none" => Some(ToolChoice::None),
        Value::String(s) if s == "required" => Some(ToolChoice::Required),
        Value::String(_) => Some(ToolChoice::Auto),
        c @ Value::Object(_) => c["name"].as_str().map(|n| ToolChoice::Tool(n.to_string())),
        _ => None,
    };
    if let Some(f) = v.pointer("/text/format") {
        out.response_format = match f["type"].as_str() {
            Some("json_schema") => Some(ResponseFormat::JsonSchema {
                name: f["name"].as_str().unwrap_or("response").to_string(),
                schema: f.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: f["strict"].as_bool(),
            }),
            Some("json_object") => Some(ResponseFormat::JsonObject),
            _ => None,
        };
    }
    if let Some(e) = v.pointer("/reasoning/effort").and_then(Value::as_str) {
        out.reasoning = Some(Reasoning {
            effort: Some(e.to_string()),
            budget_tokens: None,
        });
    }
    out.user = v["safety_identifier"]
        .as_str()
        .or(v["user"].as_str())
        .map(str::to_string);
    if v["store"] == json!(true) {
        w.push(Warning(
            "store: true not honoured by a translated upstream".into(),
        ));
    }
    for k in [
        "truncation",
        "service_tier",
        "background",
        "prompt",
        "conversation",
    ] {
        if v.get(k).is_some_and(|x| !x.is_null()) {
            w.push(Warning(format!("{k} dropped")));
        }
    }
    Ok((out, w))
}

/// Decodes a whole Responses response into the canonical model.
pub fn decode_response(body: &[u8]) -> Result<canonical::Response, DecodeError> {
    object_start(body)?;
    let v: Value = serde_json::from_slice(body)?;
    let mut w = Vec::new();
    let mut parts = Vec::new();
    for it in v["output"].as_array().into_iter().flatten() {
        match it["type"].as_str().unwrap_or("") {
            "message" => parts.extend(content(&it["content"], &mut w)),
            "function_call" => parts.push(Part::ToolCall {
                id: it["call_id"].as_str().unwrap_or("").to_string(),
                name: call_name(it),
                arguments: it["arguments"].as_str().unwrap_or("{}").to_string(),
            }),
            "custom_tool_call" => parts.push(Part::ToolCall {
                id: it["call_id"].as_str().unwrap_or("").to_string(),
                name: call_name(it),
                arguments: json!({"input": it["input"].as_str().unwrap_or("")}).to_string(),
            }),
            "reasoning" => {
                let text = it["summary"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                let encrypted = it["encrypted_content"].as_str().map(|d| Opaque {
                    dialect: crate::Dialect::OpenAiResponses,
                    data: d.to_string(),
                });
                parts.push(Part::Reasoning {
                    text,
                    signature: None,
                    encrypted,
                });
            }
            _ => {}
        }
    }
    let finish = if v["status"] == "incomplete" {
        FinishReason::Length
    } else if parts.iter().any(|p| matches!(p, Part::ToolCall { .. })) {
        FinishReason::ToolCalls
    } else {
        FinishReason::Stop
    };
    Ok(canonical::Response {
        id: v["id"].as_str().unwrap_or("").to_string(),
        model: v["model"].as_str().unwrap_or("").to_string(),
        parts,
        finish,
        stop_sequence: None,
        usage: usage(&v["usage"]),
    })
}
