//! Anthropic Messages streams: the passthrough tap (only `message_start`, `message_delta`,
//! `message_stop` and `error` events are looked at), the decoder into canonical events and the
//! encoder from them (a state machine over content block indices).

use super::encode::{message_id, usage_json};
use super::encode_tool_id;
use super::types::{Usage as WireUsage, finish_reason, stop_reason};
use crate::canonical::{Event, FinishReason, Usage};
use crate::passthrough::Tap;
use crate::{DecodeError, sse};
use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

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
            "content_block_delta" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let d = &v["delta"];
                let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
                match d["type"].as_str() {
                    Some("text_delta") => out.push(Event::TextDelta(text("text"))),
                    Some("thinking_delta") => out.push(Event::ReasoningDelta(text("thinking"))),
                    Some("signature_delta") => {
                        out.push(Event::ReasoningSignature(text("signature")))
                    }
                    Some("input_json_delta") if self.structured_block == Some(index) => {
                        out.push(Event::TextDelta(text("partial_json")));
                    }
                    Some("input_json_delta") => {
                        if let Some((_, Some(ordinal))) =
                            self.blocks.iter().find(|(i, _)| *i == index)
                        {
                            out.push(Event::ToolCallArgs {
                                index: *ordinal,
                                delta: text("partial_json"),
                            });
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

    fn emit(out: &mut BytesMut, event: &str, data: Value) {
        out.put(sse::encode(
            Some(event),
            &serde_json::to_vec(&data).expect("JSON serialises"),
        ));
    }

    fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            Self::emit(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Makes a block of `kind` the open one, starting it with `start` if it is not already.
    fn ensure(&mut self, kind: Open, start: Value, out: &mut BytesMut) -> usize {
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
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        index
    }

    fn delta(out: &mut BytesMut, index: usize, delta: Value) {
        Self::emit(
            out,
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    /// Appends the SSE bytes for one event to `out`.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match ev {
            Event::Start { id, .. } => {
                let message = json!({
                    "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                });
                Self::emit(
                    out,
                    "message_start",
                    json!({"type": "message_start", "message": message}),
                );
                Self::emit(out, "ping", json!({"type": "ping"}));
            }
            Event::TextDelta(t) => {
                let i = self.ensure(Open::Text, json!({"type": "text", "text": ""}), out);
                Self::delta(out, i, json!({"type": "text_delta", "text": t}));
            }
            Event::ReasoningDelta(t) => {
                let i = self.ensure(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": ""}),
                    out,
                );
                Self::delta(out, i, json!({"type": "thinking_delta", "thinking": t}));
            }
            Event::ReasoningSignature(s) => {
                let i = self.ensure(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": ""}),
                    out,
                );
                Self::delta(out, i, json!({"type": "signature_delta", "signature": s}));
            }
            Event::ToolCallStart { index, id, name } => {
                self.close(out);
                let start = json!({"type": "tool_use", "id": encode_tool_id(id), "name": name, "input": {}});
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
                        json!({"type": "input_json_delta", "partial_json": delta}),
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
                    "message_delta",
                    json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason(*reason), "stop_sequence": stop_sequence},
                        "usage": usage_json(&self.usage),
                    }),
                );
                Self::emit(out, "message_stop", json!({"type": "message_stop"}));
            }
            Event::Error { message } => {
                self.close(out);
                out.put(super::error::encode_stream_error(500, message));
            }
        }
    }
}
