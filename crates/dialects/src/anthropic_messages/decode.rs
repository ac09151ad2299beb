//! Decoding Anthropic Messages bodies: the passthrough inspection and full decoding into the
//! canonical model for translation.

use super::types::{Usage as WireUsage, finish_reason};
use super::{decode_tool_id, session_from_user_id};
use crate::DecodeError;
use crate::canonical::{
    self, ImageSource, Needs, Opaque, Part, Reasoning, RequestSummary, ResponseFormat, Role, Tool,
    ToolChoice, Usage, Warning, push_message,
};
use crate::scan::{
    Inspected, MessageRules, Messages, Stats, content_stats, model_of, object_start, raw_u32,
    span_of,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow, default, deserialize_with = "crate::scan::always_some")]
    model: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "messages")]
    messages: Option<Messages>,
    #[serde(default, deserialize_with = "system")]
    system: Option<Stats>,
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(default)]
    metadata: Option<MetadataView>,
    #[serde(default)]
    output_format: Option<Value>,
    #[serde(default)]
    output_config: Option<OutputConfigView>,
    #[serde(default)]
    thinking: Option<ThinkingView>,
}

#[derive(Deserialize)]
struct OutputConfigView {
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    effort: Option<String>,
}

#[derive(Deserialize)]
struct ThinkingView {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    budget_tokens: Option<u32>,
}

/// Whether a structured-output `format` object asks for a JSON schema.
fn is_json_schema(format: &Value) -> bool {
    format["type"] == "json_schema"
}

/// The structured-output format of a request: `output_config.format` (current API), else the
/// older top-level `output_format`.
fn output_format(v: &Value) -> Option<&Value> {
    v.pointer("/output_config/format")
        .filter(|f| f.is_object())
        .or_else(|| v.get("output_format").filter(|f| f.is_object()))
}

#[derive(Deserialize)]
struct MetadataView {
    #[serde(default)]
    user_id: Option<String>,
}

/// Messages roles (`system` turns are what Claude Code sends mid-conversation) and typed blocks.
const RULES: MessageRules = MessageRules {
    roles: &["user", "assistant", "system"],
    typed_blocks: true,
};

fn messages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Messages>, D::Error> {
    Messages::read(d, &RULES)
}

fn system<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Stats>, D::Error> {
    content_stats(d, &RULES)
}

/// Inspects a Messages request in one borrowed parse.
pub fn inspect_request(body: &[u8]) -> Result<Inspected, DecodeError> {
    inspect(body, true)
}

/// Inspects a token-count request (`/v1/messages/count_tokens`: a Messages request without
/// `max_tokens`).
pub fn inspect_count_tokens(body: &[u8]) -> Result<Inspected, DecodeError> {
    inspect(body, false)
}

fn inspect(body: &[u8], needs_max_tokens: bool) -> Result<Inspected, DecodeError> {
    let object_start = object_start(body)?;
    let view: RequestView<'_> = serde_json::from_slice(body)?;
    let group = model_of(view.model)?;
    let messages = view
        .messages
        .ok_or(DecodeError::MissingField { field: "messages" })?;
    if needs_max_tokens && view.max_tokens.is_none() {
        return Err(DecodeError::MissingField {
            field: "max_tokens",
        });
    }
    let mut stats = view.system.unwrap_or_default();
    stats.add(&messages.stats);
    let tools = view.tools.unwrap_or_default();
    let effort = view
        .output_config
        .as_ref()
        .and_then(|c| c.effort.as_deref())
        .map(crate::canonical::effort_level)
        .or_else(|| {
            let t = view.thinking.as_ref()?;
            match (t.kind.as_deref(), t.budget_tokens) {
                (Some("enabled"), Some(b)) => Some(crate::canonical::effort_for_budget(b)),
                (Some("adaptive" | "enabled"), _) => Some("medium"),
                _ => None,
            }
        });
    Ok(Inspected {
        dialect: crate::Dialect::AnthropicMessages,
        summary: RequestSummary {
            group,
            stream: view.stream.unwrap_or(false),
            needs: Needs {
                tools: !tools.is_empty(),
                images: stats.images > 0,
                json_schema: view
                    .output_config
                    .and_then(|c| c.format)
                    .or(view.output_format)
                    .is_some_and(|f| is_json_schema(&f)),
            },
            estimated_prompt_tokens: stats.estimate_with_tools(&tools),
            max_output_tokens: raw_u32(view.max_tokens, "max_tokens")?,
            session_key: view
                .metadata
                .and_then(|m| m.user_id)
                .and_then(|u| session_from_user_id(&u)),
            reasoning_effort: effort,
        },
        model_span: span_of(body, view.model.expect("model_of checked it")),
        stream_options: None,
        include_usage: false,
        object_start,
        max_tokens_span: view.max_tokens.map(|r| span_of(body, r)),
    })
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Reads `usage` from a non-stream response body.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, DecodeError> {
    object_start(body)?;
    let view: UsageView = serde_json::from_slice(body)?;
    Ok(view.usage.map(Usage::from))
}

fn image(block: &Value) -> Option<Part> {
    let src = block.get("source")?;
    Some(Part::Image(match src["type"].as_str()? {
        "base64" => ImageSource::Base64 {
            media_type: src["media_type"].as_str()?.to_string(),
            data: src["data"].as_str()?.to_string(),
        },
        "url" => ImageSource::Url(src["url"].as_str()?.to_string()),
        _ => return None,
    }))
}

/// Canonical parts of one content value (a string or blocks).
fn parts(content: &Value, w: &mut Vec<Warning>) -> Vec<Part> {
    let blocks = match content {
        Value::String(s) => return vec![Part::Text(s.clone())],
        Value::Array(a) => a,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for b in blocks {
        let kind = b["type"].as_str().unwrap_or("");
        let part = match kind {
            "text" => Some(Part::Text(b["text"].as_str().unwrap_or("").to_string())),
            "image" => image(b),
            "tool_use" => Some(Part::ToolCall {
                id: decode_tool_id(b["id"].as_str().unwrap_or("")),
                name: b["name"].as_str().unwrap_or("").to_string(),
                arguments: b
                    .get("input")
                    .map_or_else(|| "{}".to_string(), Value::to_string),
            }),
            "tool_result" => Some(Part::ToolResult {
                call_id: decode_tool_id(b["tool_use_id"].as_str().unwrap_or("")),
                content: b.get("content").map(|c| parts(c, w)).unwrap_or_default(),
                is_error: b["is_error"].as_bool().unwrap_or(false),
            }),
            "thinking" => Some(Part::Reasoning {
                text: b["thinking"].as_str().unwrap_or("").to_string(),
                signature: b["signature"].as_str().map(str::to_string),
                encrypted: None,
            }),
            "redacted_thinking" => Some(Part::Reasoning {
                text: String::new(),
                signature: None,
                encrypted: b["data"].as_str().map(|d| Opaque {
                    dialect: crate::Dialect::AnthropicMessages,
                    data: d.to_string(),
                }),
            }),
            _ => None,
        };
        match part {
            Some(p) => out.push(p),
            None => w.push(Warning(format!("content block of type {kind:?} dropped"))),
        }
    }
    out
}

/// Refuses message content the Messages API refuses: anything but a string or an array of
/// typed blocks.
fn check_content(content: &Value) -> Result<(), DecodeError> {
    let bad = DecodeError::InvalidField {
        field: "messages",
        reason: "content must be a string or an array of content blocks, each with a type",
    };
    match content {
        Value::String(_) => Ok(()),
        Value::Array(blocks) if blocks.iter().all(|b| b["type"].is_string()) => Ok(()),
        _ => Err(bad),
    }
}

/// Fields of a Messages request that other dialects do not take: dropped with a warning.
const DROPPED: &[&str] = &[
    "top_k",
    "context_management",
    "container",
    "mcp_servers",
    "service_tier",
];

/// Decodes a Messages request into the canonical model.
pub fn decode_request(body: &[u8]) -> Result<(canonical::Request, Vec<Warning>), DecodeError> {
    object_start(body)?;
    let v: Value = serde_json::from_slice(body)?;
    let mut w = Vec::new();
    let model = v["model"]
        .as_str()
        .ok_or(DecodeError::MissingField { field: "model" })?;
    let mut out = canonical::Request {
        model: model.to_string(),
        stream: v["stream"].as_bool().unwrap_or(false),
        max_tokens: v["max_tokens"]
            .as_u64()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        temperature: v["temperature"].as_f64(),
        top_p: v["top_p"].as_f64(),
        ..canonical::Request::default()
    };
    match &v["system"] {
        Value::String(s) => out.system.push(s.clone()),
        Value::Array(blocks) => out.system.extend(
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .map(str::to_string),
        ),
        _ => {}
    }
    let messages = v["messages"]
        .as_array()
        .ok_or(DecodeError::MissingField { field: "messages" })?;
    for m in messages {
        let role = match m["role"].as_str() {
            Some("assistant") => Role::Assistant,
            Some("system") => Role::System,
            Some("user") => Role::User,
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "messages",
                    reason: "each message needs a role of user or assistant",
                });
            }
        };
        check_content(&m["content"])?;
        let p = parts(&m["content"], &mut w);
        push_message(&mut out.messages, role, p);
    }
    for t in v["tools"].as_array().into_iter().flatten() {
        let custom = t.get("type").is_none_or(|k| k == "custom");
        if !custom || t.get("input_schema").is_none() {
            w.push(Warning(format!(
                "server tool {} dropped",
                t["name"].as_str().or(t["type"].as_str()).unwrap_or("?")
            )));
            continue;
        }
        out.tools.push(Tool {
            name: t["name"].as_str().unwrap_or("").to_string(),
            description: t["description"].as_str().map(str::to_string),
            parameters: t["input_schema"].clone(),
            ..Tool::default()
        });
    }
    if let Some(c) = v.get("tool_choice").filter(|c| c.is_object()) {
        out.tool_choice = match c["type"].as_str() {
            Some("any") => Some(ToolChoice::Required),
            Some("none") => Some(ToolChoice::None),
            Some("tool") => c["name"].as_str().map(|n| ToolChoice::Tool(n.to_string())),
            _ => Some(ToolChoice::Auto),
        };
        if c["disable_parallel_tool_use"].as_bool() == Some(true) {
            out.parallel_tool_calls = Some(false);
        }
    }
    out.stop = v["stop_sequences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let effort = v
        .pointer("/output_config/effort")
        .and_then(Value::as_str)
        .map(str::to_string);
    out.reasoning = match v.pointer("/thinking/type").and_then(Value::as_str) {
        Some("enabled") => Some(Reasoning {
            effort,
            budget_tokens: v
                .pointer("/thinking/budget_tokens")
                .and_then(Value::as_u64)
                .map(|b| b as u32),
        }),
        Some("adaptive") => Some(Reasoning {
            effort: effort.or(Some("medium".into())),
            budget_tokens: None,
        }),
        _ => effort.map(|e| Reasoning {
            effort: Some(e),
            budget_tokens: None,
        }),
    };
    if let Some(f) = output_format(&v).filter(|f| is_json_schema(f)) {
        out.response_format = Some(ResponseFormat::JsonSchema {
            name: "response".into(),
            schema: f.get("schema").cloned().unwrap_or_else(|| json!({})),
            strict: Some(true),
        });
    }
    // Claude Code's user_id is JSON with a device id (64 hex): that is the stable end user.
    out.user = v
        .pointer("/metadata/user_id")
        .and_then(Value::as_str)
        .map(|u| {
            serde_json::from_str::<Value>(u)
                .ok()
                .and_then(|j| j["device_id"].as_str().map(str::to_string))
                .unwrap_or_else(|| u.to_string())
        });
    for k in DROPPED {
        if v.get(*k).is_some_and(|x| !x.is_null()) {
            w.push(Warning(format!("{k} dropped")));
        }
    }
    if v["messages"].as_array().is_some_and(|m| {
        m.iter()
            .any(|m| m["content"].to_string().contains("cache_control"))
    }) || v["system"].to_string().contains("cache_control")
    {
        w.push(Warning("cache_control dropped".into()));
    }
    Ok((out, w))
}

/// Decodes a non-stream Messages response into the canonical model (a forced structured-answer
/// tool is unwrapped by [`canonical::Response::answer_structured`]).
pub fn decode_response(body: &[u8]) -> Result<canonical::Response, DecodeError> {
    object_start(body)?;
    let v: Value = serde_json::from_slice(body)?;
    let mut w = Vec::new();
    let p = parts(&v["content"], &mut w);
    let finish = finish_reason(v["stop_reason"].as_str().unwrap_or("end_turn"));
    let usage: WireUsage = serde_json::from_value(v["usage"].clone()).unwrap_or_default();
    Ok(canonical::Response {
        id: v["id"].as_str().unwrap_or("").to_string(),
        model: v["model"].as_str().unwrap_or("").to_string(),
        parts: p,
        finish,
        stop_sequence: v["stop_sequence"].as_str().map(str::to_string),
        usage: usage.into(),
    })
}
