//! Encoding Anthropic Messages bodies from the canonical model.

use super::encode_tool_id;
use super::types::{Usage as WireUsage, stop_reason};
use crate::canonical::{
    self, EncodeOptions, ImageSource, Part, ResponseFormat, Role, ToolChoice, Warning,
    clamp_max_tokens,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// `max_tokens` sent when neither the request nor the target sets one (Anthropic requires it).
const DEFAULT_MAX_TOKENS: u32 = 8192;

/// Name of the forced tool that carries a JSON-schema answer.
pub const STRUCTURED_TOOL: &str = "structured_response";

/// An encoded request and what its response decoder must know.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The body.
    pub body: Vec<u8>,
    /// What was dropped.
    pub warnings: Vec<Warning>,
    /// Set when a JSON schema was expressed as a forced tool: its input is the answer.
    pub structured_tool: Option<String>,
}

/// A content block as the Messages API takes it, borrowing from the canonical parts (serialized
/// directly: no intermediate JSON tree, no copy of image data).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: ImageOut<'a>,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: &'a RawValue,
    },
    ToolResult {
        tool_use_id: String,
        content: Vec<Block<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
}

impl Block<'_> {
    fn is_tool_result(&self) -> bool {
        matches!(self, Block::ToolResult { .. })
    }
}

/// An image source.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageOut<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// `{}`, for tool calls without usable arguments.
fn empty_input() -> &'static RawValue {
    serde_json::from_str("{}").expect("{} is JSON")
}

/// Tool input from JSON-text arguments, embedded as they are when they are a JSON object that
/// a strict parser reads back — numbers within a double's range included (fuzzing found an
/// upstream's `1e999` embedded raw, making the whole Messages body unreadable); anything else
/// becomes `{}`, with a warning.
fn input<'a>(arguments: &'a str, w: &mut Vec<Warning>) -> &'a RawValue {
    let strict = |raw: &RawValue| serde_json::from_str::<serde_json::Value>(raw.get()).is_ok();
    match serde_json::from_str::<&RawValue>(arguments) {
        Ok(raw) if raw.get().starts_with('{') && strict(raw) => raw,
        _ if arguments.trim().is_empty() => empty_input(),
        _ => {
            w.push(Warning(
                "tool call arguments were not a JSON object; sent as {}".into(),
            ));
            empty_input()
        }
    }
}

fn block<'a>(p: &'a Part, w: &mut Vec<Warning>) -> Option<Block<'a>> {
    Some(match p {
        Part::Text(t) if t.is_empty() => return None,
        Part::Text(t) => Block::Text { text: t },
        Part::Image(ImageSource::Base64 { media_type, data }) => Block::Image {
            source: ImageOut::Base64 { media_type, data },
        },
        Part::Image(ImageSource::Url(url)) => Block::Image {
            source: ImageOut::Url { url },
        },
        Part::ToolCall {
            id,
            name,
            arguments,
        } => Block::ToolUse {
            id: encode_tool_id(id),
            name,
            input: input(arguments, w),
        },
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => Block::ToolResult {
            tool_use_id: encode_tool_id(call_id),
            content: content.iter().filter_map(|c| block(c, w)).collect(),
            is_error: *is_error,
        },
        Part::Reasoning {
            text,
            signature: Some(sig),
            ..
        } => Block::Thinking {
            thinking: text,
            signature: sig,
        },
        Part::Reasoning {
            encrypted: Some(o),
            signature: None,
            ..
        } if o.dialect == crate::Dialect::AnthropicMessages => {
            Block::RedactedThinking { data: &o.data }
        }
        Part::Reasoning { .. } => {
            w.push(Warning(
                "reasoning without an Anthropic signature dropped".into(),
            ));
            return None;
        }
    })
}

/// One message of a request.
#[derive(Debug, Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

/// Encodes a canonical request as a Messages request for a target.
pub fn encode_request(req: &canonical::Request, opts: &EncodeOptions<'_>) -> Encoded {
    let mut w = Vec::new();
    let mut messages: Vec<MessageOut<'_>> = Vec::new();
    let mut system = req.system.clone();
    for m in &req.messages {
        if m.role == Role::System {
            system.extend(m.parts.iter().filter_map(|p| {
                if let Part::Text(t) = p {
                    Some(t.clone())
                } else {
                    None
                }
            }));
            continue;
        }
        let role = if m.role == Role::Assistant {
            "assistant"
        } else {
            "user"
        };
        let mut blocks: Vec<Block<'_>> = m.parts.iter().filter_map(|p| block(p, &mut w)).collect();
        if role == "user" {
            // Tool results must come first in a user turn.
            blocks.sort_by_key(|b| !b.is_tool_result());
        }
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(MessageOut {
                role,
                content: blocks,
            }),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(opts.model));
    let max = clamp_max_tokens(req.max_tokens, opts, &mut w)
        .or(opts.max_output_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert(
        "messages".into(),
        serde_json::to_value(&messages).expect("messages serialise"),
    );
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    if let Some(t) = req.temperature {
        if t > 1.0 {
            w.push(Warning(format!("temperature {t} clamped to 1.0")));
        }
        out.insert("temperature".into(), json!(t.min(1.0)));
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let mut v = json!({"name": t.name, "input_schema": t.parameters});
            if let Some(d) = &t.description {
                v["description"] = json!(d);
            }
            v
        })
        .collect();
    let mut choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Tool(n) => json!({"type": "tool", "name": n}),
    });
    let mut structured_tool = None;
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            tools.push(json!({
                "name": STRUCTURED_TOOL,
                "description": "Respond with the final answer as this tool's input.",
                "input_schema": schema,
            }));
            choice = Some(json!({"type": "tool", "name": STRUCTURED_TOOL}));
            structured_tool = Some(STRUCTURED_TOOL.to_string());
        }
        Some(ResponseFormat::JsonObject) => {
            w.push(Warning(
                "response_format json_object dropped (no Anthropic equivalent)".into(),
            ));
        }
        None => {}
    }
    if req.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(r) = &req.reasoning {
        // Anthropic wants 1024 <= budget < max_tokens, and no sampling changes with thinking.
        match (opts.reasoning, r.budget_or_from_effort()) {
            (true, Some(b)) if structured_tool.is_none() && max > 1024 => {
                let budget = b.clamp(1024, max - 1);
                out.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": budget}),
                );
                if out.remove("temperature").is_some() || out.remove("top_p").is_some() {
                    w.push(Warning(
                        "temperature/top_p dropped: Anthropic takes none with thinking".into(),
                    ));
                }
            }
            _ => w.push(Warning("reasoning settings dropped for this target".into())),
        }
    }
    if let Some(u) = &req.user {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    Encoded {
        body: serde_json::to_vec(&Value::Object(out)).expect("JSON serialises"),
        warnings: w,
        structured_tool,
    }
}

/// A message id in Anthropic's form.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{}", id.trim_start_matches("chatcmpl-"))
    }
}

/// A Messages response, serialized in the API's field order.
#[derive(Serialize)]
struct ResponseOut<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    usage: WireUsage,
}

/// Encodes a canonical response as a Messages response (`model` is what the caller asked for).
pub fn encode_response(r: &canonical::Response, model: &str) -> Vec<u8> {
    let mut w = Vec::new();
    let out = ResponseOut {
        id: message_id(&r.id),
        kind: "message",
        role: "assistant",
        model,
        content: r.parts.iter().filter_map(|p| block(p, &mut w)).collect(),
        stop_reason: stop_reason(r.finish),
        stop_sequence: r.stop_sequence.as_deref(),
        usage: WireUsage::from(r.usage),
    };
    serde_json::to_vec(&out).expect("JSON serialises")
}
