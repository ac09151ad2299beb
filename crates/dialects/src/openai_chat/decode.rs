//! Decoding Chat Completions bodies: the passthrough inspection (one borrowed parse that yields
//! the summary and the byte spans the rewriter needs), and full decoding into the canonical
//! model for translation.

use crate::DecodeError;
use crate::canonical::{
    self, FinishReason, ImageSource, Needs, Part, Reasoning, RequestSummary, ResponseFormat, Role,
    Tool, ToolChoice, Usage, Warning, push_message,
};
use crate::scan::{Inspected, MessageRules, Messages, model_of, object_start, raw_u32, span_of};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow, default, deserialize_with = "crate::scan::always_some")]
    model: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "messages")]
    messages: Option<Messages>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default, deserialize_with = "crate::scan::always_some")]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    functions: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    response_format: Option<FormatView<'a>>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(default)]
    prompt_cache_key: Option<String>,
    #[serde(borrow, default)]
    reasoning_effort: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FormatView<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

/// Chat message roles (`function` is the legacy tool role).
const RULES: MessageRules = MessageRules {
    roles: &[
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
    ],
    typed_blocks: false,
};

fn messages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Messages>, D::Error> {
    Messages::read(d, &RULES)
}

/// Inspects a Chat request in one borrowed parse: summary, `model` span, `stream_options`.
pub fn inspect_request(body: &[u8]) -> Result<Inspected, DecodeError> {
    let object_start = object_start(body)?;
    let view: RequestView<'_> = serde_json::from_slice(body)?;
    let group = model_of(view.model)?;
    let messages = view
        .messages
        .ok_or(DecodeError::MissingField { field: "messages" })?;
    if messages.count == 0 {
        return Err(DecodeError::InvalidField {
            field: "messages",
            reason: "must contain at least one message",
        });
    }
    let tools: Vec<&RawValue> = view
        .tools
        .iter()
        .chain(view.functions.iter())
        .flatten()
        .copied()
        .collect();
    let stats = messages.stats;
    let include_usage = view.stream_options.is_some_and(|raw| {
        serde_json::from_str::<Value>(raw.get())
            .ok()
            .and_then(|v| v.get("include_usage").and_then(Value::as_bool))
            .unwrap_or(false)
    });
    Ok(Inspected {
        dialect: crate::Dialect::OpenAiChat,
        summary: RequestSummary {
            group,
            stream: view.stream.unwrap_or(false),
            needs: Needs {
                tools: !tools.is_empty(),
                images: stats.images > 0,
                json_schema: view
                    .response_format
                    .is_some_and(|f| f.kind == "json_schema"),
            },
            estimated_prompt_tokens: stats.estimate_with_tools(&tools),
            max_output_tokens: raw_u32(view.max_completion_tokens, "max_completion_tokens")?
                .or(raw_u32(view.max_tokens, "max_tokens")?),
            session_key: view.prompt_cache_key.filter(|k| !k.is_empty()),
            reasoning_effort: view
                .reasoning_effort
                .as_deref()
                .map(crate::canonical::effort_level),
        },
        model_span: span_of(body, view.model.expect("model_of checked it")),
        stream_options: view
            .stream_options
            .map(|raw| (span_of(body, raw), raw.get().to_string())),
        include_usage,
        object_start,
        max_tokens_span: view
            .max_completion_tokens
            .or(view.max_tokens)
            .map(|r| span_of(body, r)),
    })
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    usage: Option<super::Usage>,
}

/// Reads `usage` from a non-stream response body (one parse, nothing else kept).
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, DecodeError> {
    object_start(body)?;
    let view: UsageView = serde_json::from_slice(body)?;
    Ok(view.usage.map(Usage::from))
}

/// Fields of a Chat request that no other dialect takes: dropped with a warning.
const DROPPED: &[&str] = &[
    "n",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "service_tier",
    "store",
    "metadata",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "verbosity",
];

/// Text parts and images of Chat content.
fn content_parts(c: &super::types::Content, warnings: &mut Vec<Warning>) -> Vec<Part> {
    match c {
        super::types::Content::Text(t) => vec![Part::Text(t.clone())],
        super::types::Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Some(Part::Text(p["text"].as_str().unwrap_or("").to_string())),
                Some("image_url") => {
                    let url = p
                        .pointer("/image_url/url")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    Some(Part::Image(ImageSource::from_url(url)))
                }
                other => {
                    warnings.push(Warning(format!(
                        "content part of type {} dropped",
                        other.unwrap_or("(none)")
                    )));
                    None
                }
            })
            .collect(),
    }
}

fn text_of(c: &Option<super::types::Content>) -> String {
    c.as_ref().map(|c| c.text()).unwrap_or_default()
}

/// Decodes a Chat request into the canonical model.
pub fn decode_request(body: &[u8]) -> Result<(canonical::Request, Vec<Warning>), DecodeError> {
    object_start(body)?;
    let req: super::Request = serde_json::from_slice(body)?;
    let mut w = Vec::new();
    let mut out = canonical::Request {
        model: req.model.clone(),
        stream: req.stream.unwrap_or(false),
        max_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        ..canonical::Request::default()
    };
    for m in &req.messages {
        match m.role.as_str() {
            "system" | "developer" => out.system.push(text_of(&m.content)),
            "user" => {
                let parts = m
                    .content
                    .as_ref()
                    .map(|c| content_parts(c, &mut w))
                    .unwrap_or_default();
                push_message(&mut out.messages, Role::User, parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                if let Some(r) = m.extra.get("reasoning_content").and_then(Value::as_str) {
                    parts.push(Part::Reasoning {
                        text: r.to_string(),
                        signature: None,
                        encrypted: None,
                    });
                }
                let text = text_of(&m.content);
                if !text.is_empty() {
                    parts.push(Part::Text(text));
                }
                for c in m.tool_calls.iter().flatten() {
                    parts.push(Part::ToolCall {
                        id: c.id.clone(),
                        name: c.function.name.clone(),
                        arguments: c.function.arguments.clone(),
                    });
                }
                push_message(&mut out.messages, Role::Assistant, parts);
            }
            "tool" => {
                let content = m
                    .content
                    .as_ref()
                    .map(|c| content_parts(c, &mut w))
                    .unwrap_or_default();
                let part = Part::ToolResult {
                    call_id: m.tool_call_id.clone().unwrap_or_default(),
                    content,
                    is_error: false,
                };
                push_message(&mut out.messages, Role::User, vec![part]);
            }
            other => w.push(Warning(format!("message with role {other} dropped"))),
        }
    }
    for t in req.tools.iter().flatten() {
        out.tools.push(Tool {
            name: t.function.name.clone(),
            description: t.function.description.clone(),
            parameters: t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            ..Tool::default()
        });
    }
    out.tool_choice = req.tool_choice.as_ref().and_then(|c| match c {
        Value::String(s) if s == "auto" => Some(ToolChoice::Auto),
        Value::String(s) if s == "none" => Some(ToolChoice::None),
        Value::String(s) if s == "required" => Some(ToolChoice::Required),
        v => v
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Tool(n.to_string())),
    });
    out.response_format = req
        .response_format
        .as_ref()
        .and_then(|f| match f.kind.as_str() {
            "json_object" => Some(ResponseFormat::JsonObject),
            "json_schema" => {
                let js = f.json_schema.clone().unwrap_or_default();
                Some(ResponseFormat::JsonSchema {
                    name: js["name"].as_str().unwrap_or("response").to_string(),
                    schema: js
                        .get("schema")
                        .cloned()
                        .unwrap_or_else(|| serde_json::json!({})),
                    strict: js.get("strict").and_then(Value::as_bool),
                })
            }
            _ => None,
        });
    let x = &req.extra;
    out.parallel_tool_calls = x.get("parallel_tool_calls").and_then(Value::as_bool);
    out.temperature = x.get("temperature").and_then(Value::as_f64);
    out.top_p = x.get("top_p").and_then(Value::as_f64);
    out.stop = match x.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    out.user = x.get("user").and_then(Value::as_str).map(str::to_string);
    if let Some(e) = x.get("reasoning_effort").and_then(Value::as_str) {
        out.reasoning = Some(Reasoning {
            effort: Some(e.to_string()),
            budget_tokens: None,
        });
    }
    for k in DROPPED {
        if x.get(*k).is_some_and(|v| !v.is_null()) {
            w.push(Warning(format!("{k} dropped")));
        }
    }
    Ok((out, w))
}

/// The canonical finish reason of a Chat `finish_reason`.
pub fn finish_reason(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Decodes a non-stream Chat response into the canonical model.
pub fn decode_response(body: &[u8]) -> Result<canonical::Response, DecodeError> {
    object_start(body)?;
    let r: super::Response = serde_json::from_slice(body)?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or(DecodeError::MissingField { field: "choices" })?;
    let m = choice.message;
    let mut parts = Vec::new();
    if let Some(t) = m.extra.get("reasoning_content").and_then(Value::as_str) {
        parts.push(Part::Reasoning {
            text: t.to_string(),
            signature: None,
            encrypted: None,
        });
    }
    let text = text_of(&m.content);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    for c in m.tool_calls.into_iter().flatten() {
        parts.push(Part::ToolCall {
            id: c.id,
            name: c.function.name,
            arguments: c.function.arguments,
        });
    }
    Ok(canonical::Response {
        id: r.id,
        model: r.model,
        parts,
        finish: choice
            .finish_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason),
        stop_sequence: None,
        usage: r.usage.map(Usage::from).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_spans() {
        let body = br#" {"messages":[{"role":"user","content":[{"type":"text","text":"hello there"},{"type":"image_url","image_url":{"url":"data:x"}}]}],
            "model" : "coder", "tools":[{"type":"function","function":{"name":"f"}}],
            "response_format":{"type":"json_schema","json_schema":{}},"stream":true,"x_unknown":1,
            "max_tokens":50,"prompt_cache_key":"sess-1"}"#;
        let i = inspect_request(body).unwrap();
        assert_eq!(i.summary.group, "coder");
        assert!(i.summary.stream);
        assert_eq!(
            i.summary.needs,
            Needs {
                tools: true,
                images: true,
                json_schema: true
            }
        );
        assert!(i.summary.estimated_prompt_tokens >= 85);
        assert_eq!(i.summary.max_output_tokens, Some(50));
        assert_eq!(i.summary.session_key.as_deref(), Some("sess-1"));
        assert_eq!(&body[i.model_span.clone()], br#""coder""#);
        assert!(i.stream_options.is_none());
        assert_eq!(i.object_start, 1);
    }

    #[test]
    fn null_stream_options_keeps_its_span() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":null}"#;
        let i = inspect_request(body).unwrap();
        let (span, text) = i.stream_options.unwrap();
        assert_eq!(&body[span], b"null");
        assert_eq!(text, "null");
        assert!(!i.include_usage);
    }

    #[test]
    fn errors_name_the_field_or_position() {
        let e = inspect_request(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!(e.field(), Some("model"));
        let e = inspect_request(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.field(), Some("messages"));
        let e = inspect_request(br#"{"model":3,"messages":[{"role":"user","content":"x"}]}"#)
            .unwrap_err();
        assert_eq!(e.field(), Some("model"));
        match inspect_request(b"{\n  \"model\": \"m\",\n  oops }").unwrap_err() {
            DecodeError::Json { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn usage_from_response() {
        let body = br#"{"id":"x","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
            "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let u = response_usage(body).unwrap().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cached_input_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (10, 4, 5, 2)
        );
    }
}
