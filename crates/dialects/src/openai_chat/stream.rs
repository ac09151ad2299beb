//! Chat Completions streams: the passthrough tap (each `data:` payload classified with a cheap
//! byte search; only payloads that carry usage are parsed), the decoder into canonical events
//! and the encoder from them.

use crate::canonical::{Event, FinishReason, Usage, Warning};
use crate::scan::Tap;
use crate::{DecodeError, sse};
use bytes::{BufMut, BytesMut};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
struct UsageChunkView {
    #[serde(default)]
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<super::Usage>,
}

/// Classifies one `data:` payload of a Chat stream.
pub fn tap_chunk(data: &[u8]) -> Tap {
    let data = data.trim_ascii();
    if data == b"[DONE]" {
        return Tap::Done;
    }
    if data.starts_with(b"{\"error\"") {
        return Tap::Error;
    }
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    let Some(at) = USAGE.find(data) else {
        return Tap::Other;
    };
    let rest = data[at + 7..].trim_ascii_start();
    let rest = rest.strip_prefix(b":").unwrap_or(rest).trim_ascii_start();
    if rest.first() != Some(&b'{') {
        return Tap::Other;
    }
    match serde_json::from_slice::<UsageChunkView>(data) {
        Ok(UsageChunkView {
            choices,
            usage: Some(u),
        }) if choices.is_empty() => Tap::ForcedUsage(u.into()),
        Ok(UsageChunkView { usage: Some(u), .. }) => Tap::Usage(u.into()),
        _ => Tap::Other,
    }
}

#[derive(Deserialize)]
struct ChunkView<'a> {
    /// Borrowed: only the first chunk's id and model are kept.
    #[serde(default, borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    model: std::borrow::Cow<'a, str>,
    #[serde(default)]
    choices: Vec<ChoiceView>,
    #[serde(default)]
    usage: Option<super::Usage>,
}

#[derive(Deserialize)]
struct ChoiceView {
    #[serde(default)]
    delta: DeltaView,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct DeltaView {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<super::types::ToolCallDelta>>,
}

/// Decodes a Chat stream (`data:` payloads in order) into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    done: bool,
    tools: Vec<u32>,
    finish: Option<FinishReason>,
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one `data:` payload, appending events to `out`.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.end(out);
            return Ok(());
        }
        let v: ChunkView = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => {
                if let Ok(err) = serde_json::from_slice::<Value>(data) {
                    if let Some(m) = err.pointer("/error/message").and_then(Value::as_str) {
                        out.push(Event::Error {
                            message: m.to_string(),
                        });
                        return Ok(());
                    }
                }
                return Err(e.into());
            }
        };
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: v.id.into_owned(),
                model: v.model.into_owned(),
            });
        }
        for c in v.choices {
            if let Some(r) = c.delta.reasoning_content.filter(|r| !r.is_empty()) {
                out.push(Event::ReasoningDelta(r));
            }
            if let Some(t) = c.delta.content.filter(|t| !t.is_empty()) {
                out.push(Event::TextDelta(t));
            }
            for tc in c.delta.tool_calls.into_iter().flatten() {
                let index = match self.tools.iter().position(|i| *i == tc.index) {
                    Some(i) => i,
                    None => {
                        self.tools.push(tc.index);
                        let index = self.tools.len() - 1;
                        out.push(Event::ToolCallStart {
                            index,
                            id: tc.id.clone().unwrap_or_else(|| format!("call_{index}")),
                            name: tc.function.name.clone().unwrap_or_default(),
                        });
                        index
                    }
                };
                if let Some(a) = tc.function.arguments.filter(|a| !a.is_empty()) {
                    out.push(Event::ToolCallArgs { index, delta: a });
                }
            }
            if let Some(f) = c.finish_reason {
                self.finish = Some(super::decode::finish_reason(&f));
            }
        }
        if let Some(u) = v.usage {
            out.push(Event::Usage(u.into()));
        }
        Ok(())
    }

    /// The upstream stream ended: emits the finish if it was announced. Returns whether the
    /// stream ended properly.
    pub fn end(&mut self, out: &mut Vec<Event>) -> bool {
        if !self.done {
            if let Some(reason) = self.finish {
                self.done = true;
                out.push(Event::Finish {
                    reason,
                    stop_sequence: None,
                });
            }
        }
        self.done
    }
}

/// Encodes canonical events as a Chat stream for the caller.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    tools_seen: u32,
    dropped_reasoning: bool,
}

impl StreamEncoder {
    /// An encoder for a caller that asked for `model` (the group), with or without the final
    /// usage chunk.
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        StreamEncoder {
            id: String::new(),
            model: model.to_string(),
            created,
            include_usage,
            usage: Usage::default(),
            tools_seen: 0,
            dropped_reasoning: false,
        }
    }

    fn chunk(&self, delta: DeltaOut<'_>, finish: Option<&'static str>, out: &mut BytesMut) {
        let c = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [ChoiceOut {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
        };
        out.put(sse::encode(
            None,
            &serde_json::to_vec(&c).expect("JSON serialises"),
        ));
    }

    /// Appends the SSE bytes for one event to `out`.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match ev {
            Event::Start { id, .. } => {
                self.id = if id.is_empty() {
                    "chatcmpl-router".into()
                } else {
                    id.clone()
                };
                let delta = DeltaOut {
                    role: Some("assistant"),
                    content: Some(""),
                    ..DeltaOut::default()
                };
                self.chunk(delta, None, out);
            }
            Event::TextDelta(t) => {
                let delta = DeltaOut {
                    content: Some(t),
                    ..DeltaOut::default()
                };
                self.chunk(delta, None, out)
            }
            Event::ReasoningDelta(_) | Event::ReasoningSignature(_) => {
                self.dropped_reasoning = true
            }
            Event::ToolCallStart { index, id, name } => {
                self.tools_seen = self.tools_seen.max(*index as u32 + 1);
                let call = ToolCallOut {
                    index: *index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionOut {
                        name: Some(name),
                        arguments: "",
                    },
                };
                let delta = DeltaOut {
                    tool_calls: Some([call]),
                    ..DeltaOut::default()
                };
                self.chunk(delta, None, out);
            }
            Event::ToolCallArgs { index, delta } => {
                let call = ToolCallOut {
                    index: *index,
                    id: None,
                    kind: None,
                    function: FunctionOut {
                        name: None,
                        arguments: delta,
                    },
                };
                let delta = DeltaOut {
                    tool_calls: Some([call]),
                    ..DeltaOut::default()
                };
                self.chunk(delta, None, out);
            }
            Event::Usage(u) => self.usage.merge(*u),
            Event::Finish { reason, .. } => {
                self.chunk(
                    DeltaOut::default(),
                    Some(super::encode::finish_reason(*reason)),
                    out,
                );
                if self.include_usage {
                    let c = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": super::encode::usage_json(&self.usage),
                    });
                    out.put(sse::encode(
                        None,
                        &serde_json::to_vec(&c).expect("JSON serialises"),
                    ));
                }
                out.put(sse::encode(None, b"[DONE]"));
            }
            Event::Error { message } => out.put(super::error::encode_stream_error(
                502,
                message,
                Some("upstream_error"),
            )),
        }
    }

    /// What the encoder had to drop.
    pub fn warnings(&self) -> Vec<Warning> {
        if self.dropped_reasoning {
            vec![Warning(
                "reasoning text dropped (Chat streams carry none)".into(),
            )]
        } else {
            Vec::new()
        }
    }
}

/// One delta chunk of a Chat stream, serialized as the API sends it.
#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
}

/// The chunk's one choice.
#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    finish_reason: Option<&'static str>,
    logprobs: Option<()>,
}

/// A choice's `delta`: only the fields this chunk carries.
#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

/// A piece of a streamed tool call.
#[derive(Serialize)]
struct ToolCallOut<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionOut<'a>,
}

/// The function part of a tool call piece.
#[derive(Serialize)]
struct FunctionOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_chunks() {
        assert_eq!(tap_chunk(b"[DONE]"), Tap::Done);
        assert_eq!(tap_chunk(br#"{"error":{"message":"x"}}"#), Tap::Error);
        assert_eq!(
            tap_chunk(
                br#"{"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#
            ),
            Tap::Other
        );
        let k = tap_chunk(
            br#"{"id":"a","choices":[],"usage": {"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        );
        match k {
            Tap::ForcedUsage(u) => assert_eq!((u.input_tokens, u.output_tokens), (3, 2)),
            other => panic!("unexpected {other:?}"),
        }
        let k = tap_chunk(
            br#"{"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        );
        assert!(matches!(k, Tap::Usage(_)));
    }
}
