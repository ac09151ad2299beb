//! Responses streams: the passthrough tap (only the terminal `response.*` events are parsed),
//! the decoder into canonical events, and the encoder from them — a state machine that keeps
//! `sequence_number` increasing and `output_index`/`item_id`/`content_index` stable.

use super::ToolShapes;
use super::encode::{
    ErrorOut, OutputItem, OutputText, ResponseOut, SummaryText, call_out, message_out,
    reasoning_out, response_id,
};
use crate::canonical::{Event, FinishReason, Usage};
use crate::passthrough::Tap;
use crate::{DecodeError, sse};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::value::RawValue;
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
    /// Finished output items, serialized once (the final response repeats them).
    output: Vec<Box<RawValue>>,
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

    /// Appends one event, numbering it.
    fn emit(seq: &mut u64, out: &mut BytesMut, kind: &'static str, body: impl Serialize) {
        let ev = Numbered {
            kind,
            sequence_number: *seq,
            body,
        };
        *seq += 1;
        out.put(sse::encode(
            Some(kind),
            &serde_json::to_vec(&ev).expect("JSON serialises"),
        ));
    }

    /// Emits a `response.*` event carrying the response as it stands.
    fn emit_response(
        &mut self,
        out: &mut BytesMut,
        kind: &'static str,
        status: &str,
        error: Option<&str>,
    ) {
        let usage = (status != "in_progress").then_some(&self.usage);
        let mut response = ResponseOut::new(
            &self.id,
            &self.model,
            self.created,
            status,
            &self.output[..],
            usage,
        );
        response.error = error.map(|message| ErrorOut {
            code: "server_error",
            message,
        });
        Self::emit(&mut self.seq, out, kind, ResponseEv { response });
    }

    /// Closes the open item, emitting its `.done` events.
    fn close(&mut self, out: &mut BytesMut) {
        let Some((open, index, item_id)) = self.open.take() else {
            return;
        };
        let seq = &mut self.seq;
        let item_id = item_id.as_str();
        let at = At {
            item_id,
            output_index: index,
        };
        let item = match &open {
            Open::Message { text } => {
                let text = text.as_str();
                let part = OutputText {
                    text,
                    annotations: [],
                };
                Self::emit(
                    seq,
                    out,
                    "response.output_text.done",
                    TextDone {
                        at,
                        content_index: Some(0),
                        summary_index: None,
                        text,
                    },
                );
                Self::emit(
                    seq,
                    out,
                    "response.content_part.done",
                    PartEv {
                        at,
                        content_index: Some(0),
                        summary_index: None,
                        part: Part::Text(part),
                    },
                );
                message_out(item_id.to_string(), text, "completed")
            }
            Open::Reasoning { text } => {
                let text = text.as_str();
                Self::emit(
                    seq,
                    out,
                    "response.reasoning_summary_text.done",
                    TextDone {
                        at,
                        content_index: None,
                        summary_index: Some(0),
                        text,
                    },
                );
                Self::emit(
                    seq,
                    out,
                    "response.reasoning_summary_part.done",
                    PartEv {
                        at,
                        content_index: None,
                        summary_index: Some(0),
                        part: Part::Summary(SummaryText { text }),
                    },
                );
                reasoning_out(item_id.to_string(), text, None)
            }
            Open::Call {
                call_id,
                name,
                args,
            } => {
                let item = call_out(
                    item_id.to_string(),
                    call_id,
                    name,
                    args,
                    &self.shapes,
                    "completed",
                );
                if let OutputItem::CustomToolCall { input, .. } = &item {
                    Self::emit(
                        seq,
                        out,
                        "response.custom_tool_call_input.delta",
                        ArgsEv {
                            at,
                            delta: Some(input),
                            input: None,
                            arguments: None,
                        },
                    );
                    Self::emit(
                        seq,
                        out,
                        "response.custom_tool_call_input.done",
                        ArgsEv {
                            at,
                            delta: None,
                            input: Some(input),
                            arguments: None,
                        },
                    );
                } else {
                    Self::emit(
                        seq,
                        out,
                        "response.function_call_arguments.done",
                        ArgsEv {
                            at,
                            delta: None,
                            input: None,
                            arguments: Some(args),
                        },
                    );
                }
                item
            }
        };
        let item = serde_json::value::to_raw_value(&item).expect("items serialise");
        Self::emit(
            seq,
            out,
            "response.output_item.done",
            ItemEv {
                output_index: index,
                item: &item,
            },
        );
        self.output.push(item);
    }

    /// Opens a new message (or reasoning) item unless one is open.
    fn open_text(&mut self, reasoning: bool, out: &mut BytesMut) {
        match &self.open {
            Some((Open::Message { .. }, ..)) if !reasoning => return,
            Some((Open::Reasoning { .. }, ..)) if reasoning => return,
            _ => {}
        }
        self.close(out);
        let index = self.output.len();
        let rid = self.id.trim_start_matches("resp_");
        let seq = &mut self.seq;
        let (item_id, open) = if reasoning {
            let item_id = format!("rs_{rid}_{index}");
            let item = reasoning_out(item_id.clone(), "", None);
            Self::emit(
                seq,
                out,
                "response.output_item.added",
                ItemEv {
                    output_index: index,
                    item: &item,
                },
            );
            let at = At {
                item_id: &item_id,
                output_index: index,
            };
            Self::emit(
                seq,
                out,
                "response.reasoning_summary_part.added",
                PartEv {
                    at,
                    content_index: None,
                    summary_index: Some(0),
                    part: Part::Summary(SummaryText { text: "" }),
                },
            );
            (
                item_id,
                Open::Reasoning {
                    text: String::new(),
                },
            )
        } else {
            let item_id = format!("msg_{rid}_{index}");
            let item = AddedMessage {
                id: &item_id,
                kind: "message",
                status: "in_progress",
                role: "assistant",
                content: [],
            };
            Self::emit(
                seq,
                out,
                "response.output_item.added",
                ItemEv {
                    output_index: index,
                    item: &item,
                },
            );
            let at = At {
                item_id: &item_id,
                output_index: index,
            };
            let part = OutputText {
                text: "",
                annotations: [],
            };
            Self::emit(
                seq,
                out,
                "response.content_part.added",
                PartEv {
                    at,
                    content_index: Some(0),
                    summary_index: None,
                    part: Part::Text(part),
                },
            );
            (
                item_id,
                Open::Message {
                    text: String::new(),
                },
            )
        };
        self.open = Some((open, index, item_id));
    }

    /// Appends one event's SSE bytes.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match ev {
            Event::Start { id, .. } => {
                self.id = response_id(if id.is_empty() { "router" } else { id });
                self.emit_response(out, "response.created", "in_progress", None);
                self.emit_response(out, "response.in_progress", "in_progress", None);
            }
            Event::TextDelta(t) => {
                self.open_text(false, out);
                if let Some((Open::Message { text }, index, item_id)) = &mut self.open {
                    text.push_str(t);
                    let at = At {
                        item_id,
                        output_index: *index,
                    };
                    let ev = DeltaEv {
                        at,
                        content_index: Some(0),
                        summary_index: None,
                        delta: t,
                        logprobs: Some([]),
                    };
                    Self::emit(&mut self.seq, out, "response.output_text.delta", ev);
                }
            }
            Event::ReasoningDelta(t) => {
                self.open_text(true, out);
                if let Some((Open::Reasoning { text }, index, item_id)) = &mut self.open {
                    text.push_str(t);
                    let at = At {
                        item_id,
                        output_index: *index,
                    };
                    let ev = DeltaEv {
                        at,
                        content_index: None,
                        summary_index: Some(0),
                        delta: t,
                        logprobs: None,
                    };
                    Self::emit(
                        &mut self.seq,
                        out,
                        "response.reasoning_summary_text.delta",
                        ev,
                    );
                }
            }
            Event::ReasoningSignature(_) => {}
            Event::ToolCallStart { id, name, .. } => {
                self.close(out);
                let index = self.output.len();
                let item_id = format!("fc_{}_{index}", self.id.trim_start_matches("resp_"));
                let item = call_out(item_id.clone(), id, name, "", &self.shapes, "in_progress");
                Self::emit(
                    &mut self.seq,
                    out,
                    "response.output_item.added",
                    ItemEv {
                        output_index: index,
                        item: &item,
                    },
                );
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
                        let at = At {
                            item_id,
                            output_index: *index,
                        };
                        let ev = DeltaEv {
                            at,
                            content_index: None,
                            summary_index: None,
                            delta,
                            logprobs: None,
                        };
                        Self::emit(
                            &mut self.seq,
                            out,
                            "response.function_call_arguments.delta",
                            ev,
                        );
                    }
                }
            }
            Event::Usage(u) => self.usage.merge(*u),
            Event::Finish { reason, .. } => {
                self.close(out);
                if *reason == FinishReason::Length {
                    self.emit_response(out, "response.incomplete", "incomplete", None);
                } else {
                    self.emit_response(out, "response.completed", "completed", None);
                }
            }
            Event::Error { message } => {
                self.close(out);
                self.emit_response(out, "response.failed", "failed", Some(message));
            }
        }
    }
}

/// An event: its type and sequence number, then its own fields.
#[derive(Serialize)]
struct Numbered<B> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    #[serde(flatten)]
    body: B,
}

/// Where an item event points.
#[derive(Serialize, Clone, Copy)]
struct At<'a> {
    item_id: &'a str,
    output_index: usize,
}

/// `response.created`, `.in_progress`, `.completed`, `.incomplete`, `.failed`.
#[derive(Serialize)]
struct ResponseEv<'a> {
    response: ResponseOut<'a, &'a [Box<RawValue>]>,
}

/// `response.output_item.added` / `.done`.
#[derive(Serialize)]
struct ItemEv<'a, I> {
    output_index: usize,
    item: &'a I,
}

/// The message item as `response.output_item.added` announces it (no content yet).
#[derive(Serialize)]
struct AddedMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    role: &'static str,
    content: [(); 0],
}

/// A content or summary part.
#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text(OutputText<'a>),
    Summary(SummaryText<'a>),
}

/// `response.content_part.*` / `response.reasoning_summary_part.*`.
#[derive(Serialize)]
struct PartEv<'a> {
    #[serde(flatten)]
    at: At<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    part: Part<'a>,
}

/// The per-token `*.delta` events.
#[derive(Serialize)]
struct DeltaEv<'a> {
    #[serde(flatten)]
    at: At<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
}

/// `response.output_text.done` / `response.reasoning_summary_text.done`.
#[derive(Serialize)]
struct TextDone<'a> {
    #[serde(flatten)]
    at: At<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    text: &'a str,
}

/// Tool call argument (or custom tool input) events.
#[derive(Serialize)]
struct ArgsEv<'a> {
    #[serde(flatten)]
    at: At<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
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
