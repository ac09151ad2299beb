//! Responses streams: the passthrough tap (only the terminal `response.*` events are parsed),
//! the decoder into canonical events, and the encoder from them — a state machine that keeps
//! `sequence_number` increasing and `output_index`/`item_id`/`content_index` stable.

use super::ToolShapes;
use super::encode::{call_item, message_item, reasoning_item, response_id, response_object};
use crate::canonical::{Event, FinishReason, Usage};
use crate::passthrough::Tap;
use crate::{DecodeError, sse};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::{Value, json};

/// Classifies one event of a Responses stream for the passthrough tap.
pub fn tap_event(event: Option<&str>, data: &[u8]) -> Tap {
    let usage = || {
        serde_json::from_slice::<Value>(data).ok().and_then(|v| {
            v.pointer("/response/usage")
                .filter(|u| u.is_object())
                .map(super::decode::usage)
        })
    };
    match event {
        Some("response.completed") | Some("response.incomplete") => {
            usage().map_or(Tap::Done, Tap::DoneWithUsage)
        }
        Some("response.failed") | Some("error") => Tap::Error,
        _ => Tap::Other,
    }
}

/// Decodes a Responses stream into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// item_id -> tool ordinal, and whether it is a custom (freeform) call.
    calls: Vec<(String, usize, bool)>,
    tools: usize,
    done: bool,
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one event's data.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        let v: Value = serde_json::from_slice(data)?;
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match v["type"].as_str().unwrap_or("") {
            "response.created" => out.push(Event::Start {
                id: s("/response/id"),
                model: s("/response/model"),
            }),
            "response.output_item.added" => {
                let it = &v["item"];
                let custom = it["type"] == "custom_tool_call";
                if it["type"] == "function_call" || custom {
                    let index = self.tools;
                    self.tools += 1;
                    self.calls
                        .push((it["id"].as_str().unwrap_or("").to_string(), index, custom));
                    let name = match it["namespace"].as_str() {
                        Some(ns) => format!(
                            "{ns}{}{}",
                            super::NAMESPACE_SEPARATOR,
                            it["name"].as_str().unwrap_or("")
                        ),
                        None => it["name"].as_str().unwrap_or("").to_string(),
                    };
                    out.push(Event::ToolCallStart {
                        index,
                        id: it["call_id"].as_str().unwrap_or("").to_string(),
                        name,
                    });
                    if custom {
                        out.push(Event::ToolCallArgs {
                            index,
                            delta: "{\"input\":\"".into(),
                        });
                    }
                }
            }
            "response.output_text.delta" => out.push(Event::TextDelta(s("/delta"))),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                out.push(Event::ReasoningDelta(s("/delta")))
            }
            "response.function_call_arguments.delta" => {
                if let Some((_, index, _)) =
                    self.calls.iter().find(|(id, _, _)| *id == s("/item_id"))
                {
                    out.push(Event::ToolCallArgs {
                        index: *index,
                        delta: s("/delta"),
                    });
                }
            }
            "response.custom_tool_call_input.delta" => {
                if let Some((_, index, _)) =
                    self.calls.iter().find(|(id, _, _)| *id == s("/item_id"))
                {
                    let escaped = serde_json::to_string(&s("/delta")).expect("a string serialises");
                    out.push(Event::ToolCallArgs {
                        index: *index,
                        delta: escaped[1..escaped.len() - 1].to_string(),
                    });
                }
            }
            "response.output_item.done" => {
                let id = v.pointer("/item/id").and_then(Value::as_str).unwrap_or("");
                if let Some((_, index, true)) = self.calls.iter().find(|(i, _, _)| i == id) {
                    out.push(Event::ToolCallArgs {
                        index: *index,
                        delta: "\"}".into(),
                    });
                }
            }
            t @ ("response.completed" | "response.incomplete") => {
                out.push(Event::Usage(super::decode::usage(&v["response"]["usage"])));
                let reason = if t == "response.incomplete" {
                    FinishReason::Length
                } else if self.tools > 0 {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                };
                self.done = true;
                out.push(Event::Finish {
                    reason,
                    stop_sequence: None,
                });
            }
            "response.failed" => out.push(Event::Error {
                message: v
                    .pointer("/response/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream response failed")
                    .to_string(),
            }),
            "error" => out.push(Event::Error {
                message: v["message"]
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            }),
            _ => {}
        }
        Ok(())
    }

    /// The upstream ended; returns whether it ended properly.
    pub fn end(&mut self, _out: &mut Vec<Event>) -> bool {
        self.done
    }
}

/// The output item being streamed.
#[derive(Debug)]
enum Open {
    Message {
        text: String,
    },
    Reasoning {
        text: String,
    },
    Call {
        call_id: String,
        name: String,
        args: String,
    },
}

/// Encodes canonical events as a Responses stream for the caller.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    created: u64,
    shapes: ToolShapes,
    id: String,
    seq: u64,
    open: Option<(Open, usize, String)>,
    output: Vec<Value>,
    usage: Usage,
}

impl StreamEncoder {
    /// An encoder for a caller that asked for `model` with tools shaped as `shapes`.
    pub fn new(model: &str, created: u64, shapes: ToolShapes) -> Self {
        StreamEncoder {
            model: model.to_string(),
            created,
            shapes,
            id: String::new(),
            seq: 0,
            open: None,
            output: Vec::new(),
            usage: Usage::default(),
        }
    }

    fn emit(&mut self, out: &mut BytesMut, mut data: Value) {
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let name = data["type"].as_str().unwrap_or("").to_string();
        out.put(sse::encode(
            Some(&name),
            &serde_json::to_vec(&data).expect("JSON serialises"),
        ));
    }

    /// Emits a per-token `*.delta` event (typed: these are most of a stream's events).
    fn emit_delta(seq: &mut u64, out: &mut BytesMut, mut ev: DeltaOut<'_>) {
        ev.sequence_number = *seq;
        *seq += 1;
        out.put(sse::encode(
            Some(ev.kind),
            &serde_json::to_vec(&ev).expect("JSON serialises"),
        ));
    }

    fn response(&self, status: &str, usage: bool) -> Value {
        response_object(
            &self.id,
            &self.model,
            self.created,
            status,
            self.output.clone(),
            usage.then_some(&self.usage),
        )
    }

    /// Closes the open item, emitting its `.done` events.
    fn close(&mut self, out: &mut BytesMut) {
        let Some((open, index, item_id)) = self.open.take() else {
            return;
        };
        let item = match open {
            Open::Message { text } => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(out, json!({"type": "response.output_text.done", "item_id": item_id, "output_index": index, "content_index": 0, "text": text}));
                self.emit(out, json!({"type": "response.content_part.done", "item_id": item_id, "output_index": index, "content_index": 0, "part": part}));
                message_item(&item_id, &text, "completed")
            }
            Open::Reasoning { text } => {
                self.emit(out, json!({"type": "response.reasoning_summary_text.done", "item_id": item_id, "output_index": index, "summary_index": 0, "text": text}));
                self.emit(out, json!({"type": "response.reasoning_summary_part.done", "item_id": item_id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": text}}));
                reasoning_item(&item_id, &text, None)
            }
            Open::Call {
                call_id,
                name,
                args,
            } => {
                let item = call_item(&item_id, &call_id, &name, &args, &self.shapes, "completed");
                if item["type"] == "custom_tool_call" {
                    let input = item["input"].clone();
                    self.emit(out, json!({"type": "response.custom_tool_call_input.delta", "item_id": item_id, "output_index": index, "delta": input}));
                    self.emit(out, json!({"type": "response.custom_tool_call_input.done", "item_id": item_id, "output_index": index, "input": input}));
                } else {
                    self.emit(out, json!({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": index, "arguments": args}));
                }
                item
            }
        };
        self.emit(
            out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    /// Opens a new item of the given kind unless one of that kind is open.
    fn open_text(&mut self, reasoning: bool, out: &mut BytesMut) {
        match &self.open {
            Some((Open::Message { .. }, ..)) if !reasoning => return,
            Some((Open::Reasoning { .. }, ..)) if reasoning => return,
            _ => {}
        }
        self.close(out);
        let index = self.output.len();
        let (item_id, item, open) = if reasoning {
            let id = format!("rs_{}_{index}", self.id.trim_start_matches("resp_"));
            (
                id.clone(),
                json!({"id": id, "type": "reasoning", "summary": []}),
                Open::Reasoning {
                    text: String::new(),
                },
            )
        } else {
            let id = format!("msg_{}_{index}", self.id.trim_start_matches("resp_"));
            (
                id.clone(),
                json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}),
                Open::Message {
                    text: String::new(),
                },
            )
        };
        self.emit(
            out,
            json!({"type": "response.output_item.added", "output_index": index, "item": item}),
        );
        if reasoning {
            self.emit(out, json!({"type": "response.reasoning_summary_part.added", "item_id": item_id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
        } else {
            self.emit(out, json!({"type": "response.content_part.added", "item_id": item_id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
        }
        self.open = Some((open, index, item_id));
    }

    /// Appends one event's SSE bytes.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match ev {
            Event::Start { id, .. } => {
                self.id = response_id(if id.is_empty() { "router" } else { id });
                let r = self.response("in_progress", false);
                self.emit(
                    out,
                    json!({"type": "response.created", "response": r.clone()}),
                );
                self.emit(out, json!({"type": "response.in_progress", "response": r}));
            }
            Event::TextDelta(t) => {
                self.open_text(false, out);
                if let Some((Open::Message { text }, index, item_id)) = &mut self.open {
                    text.push_str(t);
                    let ev = DeltaOut {
                        kind: "response.output_text.delta",
                        item_id,
                        output_index: *index,
                        content_index: Some(0),
                        summary_index: None,
                        delta: t,
                        logprobs: Some([]),
                        sequence_number: 0,
                    };
                    Self::emit_delta(&mut self.seq, out, ev);
                }
            }
            Event::ReasoningDelta(t) => {
                self.open_text(true, out);
                if let Some((Open::Reasoning { text }, index, item_id)) = &mut self.open {
                    text.push_str(t);
                    let ev = DeltaOut {
                        kind: "response.reasoning_summary_text.delta",
                        item_id,
                        output_index: *index,
                        content_index: None,
                        summary_index: Some(0),
                        delta: t,
                        logprobs: None,
                        sequence_number: 0,
                    };
                    Self::emit_delta(&mut self.seq, out, ev);
                }
            }
            Event::ReasoningSignature(_) => {}
            Event::ToolCallStart { id, name, .. } => {
                self.close(out);
                let index = self.output.len();
                let item_id = format!("fc_{}_{index}", self.id.trim_start_matches("resp_"));
                let item = call_item(&item_id, id, name, "", &self.shapes, "in_progress");
                self.emit(out, json!({"type": "response.output_item.added", "output_index": index, "item": item}));
                self.open = Some((
                    Open::Call {
                        call_id: id.clone(),
                        name: name.clone(),
                        args: String::new(),
                    },
                    index,
                    item_id,
                ));
            }
            Event::ToolCallArgs { delta, .. } => {
                let custom = matches!(&self.open, Some((Open::Call { name, .. }, _, _)) if self.shapes.custom.contains(name));
                if let Some((Open::Call { args, .. }, index, item_id)) = &mut self.open {
                    args.push_str(delta);
                    if !custom {
                        let ev = DeltaOut {
                            kind: "response.function_call_arguments.delta",
                            item_id,
                            output_index: *index,
                            content_index: None,
                            summary_index: None,
                            delta,
                            logprobs: None,
                            sequence_number: 0,
                        };
                        Self::emit_delta(&mut self.seq, out, ev);
                    }
                }
            }
            Event::Usage(u) => self.usage.merge(*u),
            Event::Finish { reason, .. } => {
                self.close(out);
                let (kind, status) = if *reason == FinishReason::Length {
                    ("response.incomplete", "incomplete")
                } else {
                    ("response.completed", "completed")
                };
                let r = self.response(status, true);
                self.emit(out, json!({"type": kind, "response": r}));
            }
            Event::Error { message } => {
                self.close(out);
                let mut r = self.response("failed", true);
                r["error"] = json!({"code": "server_error", "message": message});
                self.emit(out, json!({"type": "response.failed", "response": r}));
            }
        }
    }
}

/// The event that ends a Responses stream with an error once it has begun (Codex and the SDK
/// read `response.failed`).
pub fn encode_stream_error(message: &str, code: Option<&str>) -> bytes::Bytes {
    let v = json!({
        "type": "response.failed", "sequence_number": 1_000_000,
        "response": {"id": "resp_error", "object": "response", "status": "failed", "output": [],
                     "error": {"code": code.unwrap_or("server_error"), "message": message}},
    });
    sse::encode(
        Some("response.failed"),
        &serde_json::to_vec(&v).expect("JSON serialises"),
    )
}

/// A `*.delta` event of a Responses stream.
#[derive(Serialize)]
struct DeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}
