//! Anthropic Messages streams: the passthrough tap (only `message_start`, `message_delta`,
//! `message_stop` and `error` events are looked at), the decoder into canonical events and the
//! encoder from them (a state machine over content block indices).

use super::encode::message_id;
use super::encode_tool_id;
use super::types::{Usage as WireUsage, finish_reason, stop_reason};
use crate::canonical::{Event, FinishReason, Usage};
use crate::scan::Tap;
use crate::{DecodeError, sse};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// Classifies one event of an Anthropic stream for the passthrough tap.
pub fn tap_event(event: Option<&str>, data: &[u8]) -> Tap {
    let usage_at = |pointer: &str| {
        serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.pointer(pointer).cloned())
            .and_then(|u| serde_json::from_value::<WireUsage>(u).ok())
            .map(Usage::from)
    };
    match event {
        Some("message_start") => usage_at("/message/usage").map_or(Tap::Other, Tap::Usage),
        Some("message_delta") => usage_at("/usage").map_or(Tap::Other, Tap::Usage),
        Some("message_stop") => Tap::Done,
        Some("error") => Tap::Error,
        _ => Tap::Other,
    }
}

/// Decodes an Anthropic stream into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Block index -> tool call ordinal (None for other blocks).
    blocks: Vec<(u64, Option<usize>)>,
    tools: usize,
    structured_tool: Option<String>,
    structured_block: Option<u64>,
    finish: Option<(FinishReason, Option<String>)>,
    done: bool,
}

impl StreamDecoder {
    /// A decoder; `structured_tool` is the forced tool whose input is the JSON answer.
    pub fn new(structured_tool: Option<String>) -> Self {
        StreamDecoder {
            structured_tool,
            ..Self::default()
        }
    }

    /// Decodes one event, appending canonical events to `out`.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        // Deltas are nearly every event of a stream: read them without building a JSON tree.
        if let Ok(d) = serde_json::from_slice::<DeltaEventView<'_>>(data) {
            if d.kind == "content_block_delta" {
                self.delta(d.index, d.delta, out);
                return Ok(());
            }
        }
        let v: Value = serde_json::from_slice(data)?;
        match v["type"].as_str().unwrap_or("") {
            "message_start" => {
                let m = &v["message"];
                out.push(Event::Start {
                    id: m["id"].as_str().unwrap_or("").to_string(),
                    model: m["model"].as_str().unwrap_or("").to_string(),
                });
                if let Ok(u) = serde_json::from_value::<WireUsage>(m["usage"].clone()) {
                    out.push(Event::Usage(u.into()));
                }
            }
            "content_block_start" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let b = &v["content_block"];
                match b["type"].as_str() {
                    Some("tool_use") if self.structured_tool.as_deref() == b["name"].as_str() => {
                        self.structured_block = Some(index);
                    }
                    Some("tool_use") => {
                        let ordinal = self.tools;
                        self.tools += 1;
                        self.blocks.push((index, Some(ordinal)));
                        out.push(Event::ToolCallStart {
                            index: ordinal,
                            id: super::decode_tool_id(b["id"].as_str().unwrap_or("")),
                            name: b["name"].as_str().unwrap_or("").to_string(),
                        });
                    }
                    Some("text") => {
                        if let Some(t) = b["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(Event::TextDelta(t.to_string()));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Ok(u) = serde_json::from_value::<WireUsage>(v["usage"].clone()) {
                    let mut u: Usage = u.into();
                    if v.pointer("/usage/input_tokens").is_none() {
                        u.input_tokens = 0;
                    }
                    out.push(Event::Usage(u));
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    let mut reason = finish_reason(r);
                    if self.structured_block.is_some() && reason == FinishReason::ToolCalls {
                        reason = FinishReason::Stop;
                    }
                    let seq = v
                        .pointer("/delta/stop_sequence")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    self.finish = Some((reason, seq));
                }
            }
            "message_stop" => {
                self.end(out);
            }
            "error" => out.push(Event::Error {
                message: v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_string(),
            }),
            _ => {}
        }
        Ok(())
    }

    /// One `content_block_delta`.
    fn delta(&mut self, index: u64, d: DeltaView<'_>, out: &mut Vec<Event>) {
        let text = |t: Option<Cow<'_, str>>| t.map(Cow::into_owned).unwrap_or_default();
        match &*d.kind {
            "text_delta" => out.push(Event::TextDelta(text(d.text))),
            "thinking_delta" => out.push(Event::ReasoningDelta(text(d.thinking))),
            "signature_delta" => out.push(Event::ReasoningSignature(text(d.signature))),
            "input_json_delta" if self.structured_block == Some(index) => {
                out.push(Event::TextDelta(text(d.partial_json)));
            }
            "input_json_delta" => {
                if let Some((_, Some(ordinal))) = self.blocks.iter().find(|(i, _)| *i == index) {
                    out.push(Event::ToolCallArgs {
                        index: *ordinal,
                        delta: text(d.partial_json),
                    });
                }
            }
            _ => {}
        }
    }

    /// The upstream stream ended: emits the finish if it was announced. Returns whether the
    /// stream ended properly.
    pub fn end(&mut self, out: &mut Vec<Event>) -> bool {
        if !self.done {
            if let Some((reason, stop_sequence)) = self.finish.take() {
                self.done = true;
                out.push(Event::Finish {
                    reason,
                    stop_sequence,
                });
            }
        }
        self.done
    }
}

/// What kind of content block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(usize),
}

/// Encodes canonical events as an Anthropic stream for the caller.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    open: Option<(Open, usize)>,
    next_block: usize,
    tool_blocks: Vec<(usize, usize)>,
    usage: Usage,
}

impl StreamEncoder {
    /// An encoder for a caller that asked for `model` (the group).
    pub fn new(model: &str) -> Self {
        StreamEncoder {
            model: model.to_string(),
            open: None,
            next_block: 0,
            tool_blocks: Vec::new(),
            usage: Usage::default(),
        }
    }

    fn emit(out: &mut BytesMut, event: &Out<'_>) {
        out.put(sse::encode(
            Some(event.name()),
            &serde_json::to_vec(event).expect("JSON serialises"),
        ));
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            Self::emit(out, &Out::ContentBlockStop { index });
        }
    }

    /// Makes a block of `kind` the open one, starting it with `start` if it is not already.
    fn ensure(&mut self, kind: Open, start: BlockStart<'_>, out: &mut BytesMut) -> usize {
        if let Some((k, i)) = self.open {
            if k == kind {
                return i;
            }
        }
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((kind, index));
        Self::emit(
            out,
            &Out::ContentBlockStart {
                index,
                content_block: start,
            },
        );
        index
    }

    fn delta(out: &mut BytesMut, index: usize, delta: Delta<'_>) {
        Self::emit(out, &Out::ContentBlockDelta { index, delta });
    }

    /// Appends the SSE bytes for one event to `out`.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match ev {
            Event::Start { id, .. } => {
                let message = StartMessage {
                    id: message_id(id),
                    kind: "message",
                    role: "assistant",
                    model: &self.model,
                    content: [],
                    stop_reason: None,
                    stop_sequence: None,
                    usage: WireUsage::default(),
                };
                Self::emit(out, &Out::MessageStart { message });
                Self::emit(out, &Out::Ping);
            }
            Event::TextDelta(t) => {
                let i = self.ensure(Open::Text, BlockStart::Text { text: "" }, out);
                Self::delta(out, i, Delta::Text { text: t });
            }
            Event::ReasoningDelta(t) => {
                let i = self.ensure(Open::Thinking, BlockStart::Thinking { thinking: "" }, out);
                Self::delta(out, i, Delta::Thinking { thinking: t });
            }
            Event::ReasoningSignature(s) => {
                let i = self.ensure(Open::Thinking, BlockStart::Thinking { thinking: "" }, out);
                Self::delta(out, i, Delta::Signature { signature: s });
            }
            Event::ToolCallStart { index, id, name } => {
                self.close(out);
                let start = BlockStart::ToolUse {
                    id: encode_tool_id(id),
                    name,
                    input: Empty {},
                };
                let block = self.ensure(Open::Tool(*index), start, out);
                self.tool_blocks.push((*index, block));
            }
            Event::ToolCallArgs { index, delta } => {
                let block = match self.open {
                    Some((Open::Tool(t), b)) if t == *index => Some(b),
                    _ => self
                        .tool_blocks
                        .iter()
                        .find(|(t, _)| t == index)
                        .map(|(_, b)| *b),
                };
                if let Some(b) = block {
                    Self::delta(
                        out,
                        b,
                        Delta::InputJson {
                            partial_json: delta,
                        },
                    );
                }
            }
            Event::Usage(u) => self.usage.merge(*u),
            Event::Finish {
                reason,
                stop_sequence,
            } => {
                self.close(out);
                Self::emit(
                    out,
                    &Out::MessageDelta {
                        delta: StopDelta {
                            stop_reason: stop_reason(*reason),
                            stop_sequence: stop_sequence.as_deref(),
                        },
                        usage: WireUsage::from(self.usage),
                    },
                );
                Self::emit(out, &Out::MessageStop);
            }
            Event::Error { message } => {
                self.close(out);
                out.put(super::error::encode_stream_error(500, message));
            }
        }
    }
}

/// One Messages stream event, serialized as the API sends it (`type` first).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    Ping,
    ContentBlockStart {
        index: usize,
        content_block: BlockStart<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: StopDelta<'a>,
        usage: WireUsage,
    },
    MessageStop,
}

impl Out<'_> {
    /// The SSE `event:` name, the same as the `type` field.
    fn name(&self) -> &'static str {
        match self {
            Out::MessageStart { .. } => "message_start",
            Out::Ping => "ping",
            Out::ContentBlockStart { .. } => "content_block_start",
            Out::ContentBlockDelta { .. } => "content_block_delta",
            Out::ContentBlockStop { .. } => "content_block_stop",
            Out::MessageDelta { .. } => "message_delta",
            Out::MessageStop => "message_stop",
        }
    }
}

/// The empty message of `message_start`.
#[derive(Serialize)]
struct StartMessage<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: WireUsage,
}

/// The `content_block` of `content_block_start`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: Empty,
    },
}

/// `{}`.
#[derive(Serialize)]
struct Empty {}

/// The `delta` of `content_block_delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

/// The `delta` of `message_delta`.
#[derive(Serialize)]
struct StopDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

/// What a `content_block_delta` event carries (other events' fields are skipped).
#[derive(Deserialize)]
struct DeltaEventView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: DeltaView<'a>,
}

/// A block delta: which kind, and its one text field.
#[derive(Deserialize, Default)]
struct DeltaView<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    signature: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
}
