//! Decoding Chat Completions bodies on the passthrough path: one borrowed parse that yields the
//! canonical summary and the byte spans the rewriter needs, without building the full types.

use crate::DecodeError;
use crate::canonical::{Needs, RequestSummary, Usage};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

/// A request inspected for passthrough: its summary and where the fields to rewrite sit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The canonical summary.
    pub summary: RequestSummary,
    /// Byte span of the `model` value (the JSON string, quotes included).
    pub model_span: Range<usize>,
    /// Byte span and text of the `stream_options` value, when present (even if `null`).
    pub stream_options: Option<(Range<usize>, String)>,
    /// The caller asked for `stream_options.include_usage: true`.
    pub include_usage: bool,
    /// Offset of the body's opening `{`.
    pub object_start: usize,
}

fn always_some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RequestView<'a> {
    #[serde(borrow, default, deserialize_with = "always_some")]
    model: Option<&'a RawValue>,
    #[serde(default)]
    messages: Option<Vec<MessageView>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default, deserialize_with = "always_some")]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    functions: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    response_format: Option<FormatView<'a>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_cache_key: Option<String>,
}

#[derive(Deserialize)]
struct FormatView<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MessageView {
    #[serde(default)]
    content: Option<ContentView>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
}

/// Text size and image count of one message's content, gathered while parsing.
#[derive(Default)]
struct ContentView {
    text_bytes: usize,
    images: usize,
}

#[derive(Deserialize)]
struct PartView<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for ContentView {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ContentView;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ContentView, E> {
                Ok(ContentView {
                    text_bytes: s.len(),
                    images: 0,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ContentView, A::Error> {
                let mut out = ContentView::default();
                while let Some(part) = seq.next_element::<PartView<'de>>()? {
                    if matches!(part.kind.as_ref(), "image_url" | "input_image") {
                        out.images += 1;
                    }
                    out.text_bytes += part.text.map_or(0, |t| t.get().len());
                }
                Ok(out)
            }
            fn visit_unit<E: de::Error>(self) -> Result<ContentView, E> {
                Ok(ContentView::default())
            }
        }
        d.deserialize_any(V)
    }
}

fn span_of(body: &[u8], raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.get().len()
}

/// Inspects a Chat request in one borrowed parse: summary, `model` span, `stream_options`.
pub fn inspect_request(body: &[u8]) -> Result<Inspected, DecodeError> {
    let view: RequestView<'_> = serde_json::from_slice(body)?;
    let model_raw = view
        .model
        .ok_or(DecodeError::MissingField { field: "model" })?;
    let group: String =
        serde_json::from_str(model_raw.get()).map_err(|_| DecodeError::InvalidField {
            field: "model",
            reason: "must be a string",
        })?;
    if group.is_empty() {
        return Err(DecodeError::InvalidField {
            field: "model",
            reason: "must not be empty",
        });
    }
    let messages = view
        .messages
        .ok_or(DecodeError::MissingField { field: "messages" })?;
    if messages.is_empty() {
        return Err(DecodeError::InvalidField {
            field: "messages",
            reason: "must contain at least one message",
        });
    }
    let tools_bytes: usize = view
        .tools
        .iter()
        .chain(view.functions.iter())
        .flatten()
        .map(|t| t.get().len())
        .sum();
    let has_tools = view.tools.as_ref().is_some_and(|t| !t.is_empty())
        || view.functions.as_ref().is_some_and(|t| !t.is_empty());
    let (text_bytes, images) = messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .fold((0usize, 0usize), |(t, i), c| {
            (t + c.text_bytes, i + c.images)
        });
    let tool_call_msgs = messages.iter().filter(|m| m.tool_calls.is_some()).count();
    let include_usage = match view.stream_options {
        Some(raw) => serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| v.get("include_usage").and_then(|b| b.as_bool()))
            .unwrap_or(false),
        None => false,
    };
    // About four bytes of text per token, a fixed cost per message, ~85 tokens per image.
    let estimate = (text_bytes + tools_bytes) / 4 + messages.len() * 4 + tool_call_msgs * 16;
    let estimate = estimate + images * 85;
    let object_start = body
        .iter()
        .position(|b| *b == b'{')
        .expect("a body that parsed as an object has an opening brace");
    Ok(Inspected {
        summary: RequestSummary {
            group,
            stream: view.stream.unwrap_or(false),
            needs: Needs {
                tools: has_tools,
                images: images > 0,
                json_schema: view
                    .response_format
                    .is_some_and(|f| f.kind == "json_schema"),
            },
            estimated_prompt_tokens: u32::try_from(estimate).unwrap_or(u32::MAX),
            max_output_tokens: view
                .max_completion_tokens
                .or(view.max_tokens)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            session_key: view.prompt_cache_key.filter(|k| !k.is_empty()),
        },
        model_span: span_of(body, model_raw),
        stream_options: view
            .stream_options
            .map(|raw| (span_of(body, raw), raw.get().to_string())),
        include_usage,
        object_start,
    })
}

#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    usage: Option<super::Usage>,
}

/// Reads `usage` from a non-stream response body (one parse, nothing else kept).
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, DecodeError> {
    let view: UsageView = serde_json::from_slice(body)?;
    Ok(view.usage.map(Usage::from))
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
