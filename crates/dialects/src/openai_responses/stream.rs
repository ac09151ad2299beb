//! Responses streams: the passthrough tap (only the terminal `response.*` events are parsed),
//! the decoder into canonical events, and the encoder from them — a state machine that keeps
//! `sequence_number` increasing and `output_index`/`item_id`/`content_index` stable.

use super::ToolShapes;
use super::encode::{call_out, message_out, reasoning_out, response_id};
use super::types::{
    AddedMessage, ArgsEv, At, DeltaEv, ErrorOut, ItemEv, Numbered, OutputItem, OutputText, Part,
    PartEv, ResponseEv, ResponseOut, SummaryText, TextDone,
};
use crate::canonical::{Event, FinishReason, Usage};
use crate::scan::Tap;
use crate::{DecodeError, sse};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

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

/// The two kinds of streamed text: a message's output text and a reasoning item's summary.
/// Everything that differs between them on the wire is here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Message,
    Reasoning,
}

impl TextKind {
    fn item_prefix(self) -> &'static str {
        match self {
            TextKind::Message => "msg",
            TextKind::Reasoning => "rs",
        }
    }

    fn delta_event(self) -> &'static str {
        match self {
            TextKind::Message => "response.output_text.delta",
            TextKind::Reasoning => "response.reasoning_summary_text.delta",
        }
    }

    fn done_event(self) -> &'static str {
        match self {
            TextKind::Message => "response.output_text.done",
            TextKind::Reasoning => "response.reasoning_summary_text.done",
        }
    }

    fn part_event(self, done: bool) -> &'static str {
        match (self, done) {
            (TextKind::Message, false) => "response.content_part.added",
            (TextKind::Message, true) => "response.content_part.done",
            (TextKind::Reasoning, false) => "response.reasoning_summary_part.added",
            (TextKind::Reasoning, true) => "response.reasoning_summary_part.done",
        }
    }

    /// Where this kind's text sits: content part 0 of a message, summary part 0 of reasoning.
    fn at(self, item_id: &str, output_index: usize) -> At<'_> {
        let (content_index, summary_index) = match self {
            TextKind::Message => (Some(0), None),
            TextKind::Reasoning => (None, Some(0)),
        };
        At {
            item_id,
            output_index,
            content_index,
            summary_index,
        }
    }

    fn part(self, text: &str) -> Part<'_> {
        match self {
            TextKind::Message => Part::Text(OutputText {
                text,
                annotations: [],
            }),
            TextKind::Reasoning => Part::Summary(SummaryText { text }),
        }
    }

    /// Output text deltas carry `logprobs` (empty); summary deltas do not.
    fn logprobs(self) -> Option<[(); 0]> {
        (self == TextKind::Message).then_some([])
    }
}

/// The output item being streamed.
#[derive(Debug)]
enum Open {
    Text {
        kind: TextKind,
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

    /// Emits `response.output_item.added` or `.done`.
    fn emit_item(
        seq: &mut u64,
        out: &mut BytesMut,
        done: bool,
        index: usize,
        item: impl Serialize,
    ) {
        let kind = if done {
            "response.output_item.done"
        } else {
            "response.output_item.added"
        };
        Self::emit(
            seq,
            out,
            kind,
            ItemEv {
                output_index: index,
                item,
            },
        );
    }

    /// Closes the open item, emitting its `.done` events.
    fn close(&mut self, out: &mut BytesMut) {
        let Some((open, index, item_id)) = self.open.take() else {
            return;
        };
        let seq = &mut self.seq;
        let item = match &open {
            Open::Text { kind, text } => {
                let at = kind.at(&item_id, index);
                Self::emit(seq, out, kind.done_event(), TextDone { at, text });
                let part = kind.part(text);
                Self::emit(seq, out, kind.part_event(true), PartEv { at, part });
                match kind {
                    TextKind::Message => message_out(item_id.clone(), text, "completed"),
                    TextKind::Reasoning => reasoning_out(item_id.clone(), text, None),
                }
            }
            Open::Call {
                call_id,
                name,
                args,
            } => {
                let item = call_out(
                    item_id.clone(),
                    call_id,
                    name,
                    args,
                    &self.shapes,
                    "completed",
                );
                let at = At::item(&item_id, index);
                let none = ArgsEv {
                    at,
                    delta: None,
                    input: None,
                    arguments: None,
                };
                if let OutputItem::CustomToolCall { input, .. } = &item {
                    let delta = ArgsEv {
                        delta: Some(input),
                        ..none
                    };
                    Self::emit(seq, out, "response.custom_tool_call_input.delta", delta);
                    let done = ArgsEv {
                        input: Some(input),
                        ..none
                    };
                    Self::emit(seq, out, "response.custom_tool_call_input.done", done);
                } else {
                    let done = ArgsEv {
                        arguments: Some(args),
                        ..none
                    };
                    Self::emit(seq, out, "response.function_call_arguments.done", done);
                }
                item
            }
        };
        let item = serde_json::value::to_raw_value(&item).expect("items serialise");
        Self::emit_item(seq, out, true, index, &item);
        self.output.push(item);
    }

    /// Makes an item of text `kind` the open one, announcing it unless it already is.
    fn open_text(&mut self, kind: TextKind, out: &mut BytesMut) {
        if matches!(&self.open, Some((Open::Text { kind: k, .. }, ..)) if *k == kind) {
            return;
        }
        self.close(out);
        let index = self.output.len();
        let item_id = format!(
            "{}_{}_{index}",
            kind.item_prefix(),
            self.id.trim_start_matches("resp_")
        );
        let seq = &mut self.seq;
        match kind {
            TextKind::Message => {
                let item = AddedMessage {
                    id: &item_id,
                    kind: "message",
                    status: "in_progress",
                    role: "assistant",
                    content: [],
                };
                Self::emit_item(seq, out, false, index, item);
            }
            TextKind::Reasoning => {
                let item = reasoning_out(item_id.clone(), "", None);
                Self::emit_item(seq, out, false, index, item);
            }
        }
        let at = kind.at(&item_id, index);
        let part = kind.part("");
        Self::emit(seq, out, kind.part_event(false), PartEv { at, part });
        let text = String::new();
        self.open = Some((Open::Text { kind, text }, index, item_id));
    }

    /// Appends a piece of text of `kind`, opening its item if needed.
    fn text_delta(&mut self, kind: TextKind, delta: &str, out: &mut BytesMut) {
        self.open_text(kind, out);
        if let Some((Open::Text { text, .. }, index, item_id)) = &mut self.open {
            text.push_str(delta);
            let ev = DeltaEv {
                at: kind.at(item_id, *index),
                delta,
                logprobs: kind.logprobs(),
            };
            Self::emit(&mut self.seq, out, kind.delta_event(), ev);
        }
    }

    /// Appends one event's SSE bytes.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match ev {
            Event::Start { id, .. } => {
                self.id = response_id(if id.is_empty() { "router" } else { id });
                self.emit_response(out, "response.created", "in_progress", None);
                self.emit_response(out, "response.in_progress", "in_progress", None);
            }
            Event::TextDelta(t) => self.text_delta(TextKind::Message, t, out),
            Event::ReasoningDelta(t) => self.text_delta(TextKind::Reasoning, t, out),
            Event::ReasoningSignature(_) => {}
            Event::ToolCallStart { id, name, .. } => {
                self.close(out);
                let index = self.output.len();
                let item_id = format!("fc_{}_{index}", self.id.trim_start_matches("resp_"));
                let item = call_out(item_id.clone(), id, name, "", &self.shapes, "in_progress");
                Self::emit_item(&mut self.seq, out, false, index, item);
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
                        let ev = DeltaEv {
                            at: At::item(item_id, *index),
                            delta,
                            logprobs: None,
                        };
                        let kind = "response.function_call_arguments.delta";
                        Self::emit(&mut self.seq, out, kind, ev);
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
