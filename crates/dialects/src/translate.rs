//! Dispatch by dialect for translation through the canonical model, and for error shapes. The
//! router calls these and never looks inside a dialect itself.

use crate::canonical::{EncodeOptions, Event, Request, Response, Warning};
use crate::{DecodeError, Dialect, anthropic_messages as am, openai_chat as oc};
use bytes::{Bytes, BytesMut};

/// Decodes a request body of `d` into the canonical model.
pub fn decode_request(d: Dialect, body: &[u8]) -> Result<(Request, Vec<Warning>), DecodeError> {
    match d {
        Dialect::OpenAiChat => oc::decode::decode_request(body),
        Dialect::AnthropicMessages => am::decode::decode_request(body),
        Dialect::OpenAiResponses => Err(unsupported()),
    }
}

fn unsupported() -> DecodeError {
    DecodeError::InvalidField {
        field: "model",
        reason: "the Responses dialect is not available yet",
    }
}

/// An encoded upstream request and what its response decoding must know.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRequest {
    /// The body.
    pub body: Vec<u8>,
    /// What could not be carried over.
    pub warnings: Vec<Warning>,
    /// The forced tool that carries a JSON-schema answer, when one was used.
    pub structured_tool: Option<String>,
}

/// Encodes a canonical request in dialect `d` for a target.
pub fn encode_request(d: Dialect, req: &Request, opts: &EncodeOptions<'_>) -> EncodedRequest {
    match d {
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            let (body, warnings) = oc::encode::encode_request(req, opts);
            EncodedRequest {
                body,
                warnings,
                structured_tool: None,
            }
        }
        Dialect::AnthropicMessages => {
            let e = am::encode::encode_request(req, opts);
            EncodedRequest {
                body: e.body,
                warnings: e.warnings,
                structured_tool: e.structured_tool,
            }
        }
    }
}

/// Decodes a whole response body of `d`.
pub fn decode_response(
    d: Dialect,
    body: &[u8],
    structured_tool: Option<&str>,
) -> Result<Response, DecodeError> {
    match d {
        Dialect::OpenAiChat => oc::decode::decode_response(body),
        Dialect::AnthropicMessages => am::decode::decode_response(body, structured_tool),
        Dialect::OpenAiResponses => Err(unsupported()),
    }
}

/// Encodes a canonical response in dialect `d`; `model` is what the caller asked for.
pub fn encode_response(d: Dialect, r: &Response, model: &str, created: u64) -> Vec<u8> {
    match d {
        Dialect::OpenAiChat | Dialect::OpenAiResponses => {
            oc::encode::encode_response(r, model, created)
        }
        Dialect::AnthropicMessages => am::encode::encode_response(r, model),
    }
}

/// A stream decoder for an upstream dialect.
#[derive(Debug)]
pub enum StreamDecoder {
    /// Chat chunks.
    Chat(oc::stream::StreamDecoder),
    /// Anthropic events.
    Anthropic(am::stream::StreamDecoder),
}

impl StreamDecoder {
    /// A decoder for `d`.
    pub fn new(d: Dialect, structured_tool: Option<String>) -> Self {
        match d {
            Dialect::AnthropicMessages => {
                StreamDecoder::Anthropic(am::stream::StreamDecoder::new(structured_tool))
            }
            _ => StreamDecoder::Chat(oc::stream::StreamDecoder::new()),
        }
    }

    /// Decodes one event's data.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        match self {
            StreamDecoder::Chat(s) => s.decode(data, out),
            StreamDecoder::Anthropic(s) => s.decode(data, out),
        }
    }

    /// The upstream ended; returns whether it ended properly.
    pub fn end(&mut self, out: &mut Vec<Event>) -> bool {
        match self {
            StreamDecoder::Chat(s) => s.end(out),
            StreamDecoder::Anthropic(s) => s.end(out),
        }
    }
}

/// A stream encoder for a client dialect.
#[derive(Debug)]
pub enum StreamEncoder {
    /// Chat chunks.
    Chat(oc::stream::StreamEncoder),
    /// Anthropic events.
    Anthropic(am::stream::StreamEncoder),
}

impl StreamEncoder {
    /// An encoder for `d`; `model` is what the caller asked for.
    pub fn new(d: Dialect, model: &str, created: u64, include_usage: bool) -> Self {
        match d {
            Dialect::AnthropicMessages => {
                StreamEncoder::Anthropic(am::stream::StreamEncoder::new(model))
            }
            _ => StreamEncoder::Chat(oc::stream::StreamEncoder::new(
                model,
                created,
                include_usage,
            )),
        }
    }

    /// Appends one event's SSE bytes.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match self {
            StreamEncoder::Chat(s) => s.encode(ev, out),
            StreamEncoder::Anthropic(s) => s.encode(ev, out),
        }
    }

    /// What had to be dropped.
    pub fn warnings(&self) -> Vec<Warning> {
        match self {
            StreamEncoder::Chat(s) => s.warnings(),
            StreamEncoder::Anthropic(_) => Vec::new(),
        }
    }
}

/// An error response in dialect `d`: the status to send and the body.
pub fn encode_error(
    d: Dialect,
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> (u16, Vec<u8>) {
    match d {
        Dialect::AnthropicMessages => {
            let s = am::error::surface_status(status);
            (s, am::error::encode_error(s, message))
        }
        _ => (
            status,
            oc::error::encode_error(status, message, param, code),
        ),
    }
}

/// The final SSE event for an error once a stream of dialect `d` has begun.
pub fn encode_stream_error(d: Dialect, status: u16, message: &str, code: Option<&str>) -> Bytes {
    match d {
        Dialect::AnthropicMessages => {
            am::error::encode_stream_error(am::error::surface_status(status), message)
        }
        _ => oc::error::encode_stream_error(status, message, code),
    }
}

/// Whether an upstream error body is already in dialect `d`'s shape.
pub fn is_error_body(d: Dialect, body: &[u8]) -> bool {
    match d {
        Dialect::AnthropicMessages => am::error::is_error_body(body),
        _ => oc::error::is_error_body(body),
    }
}

/// The message of an upstream error body in any common shape (`error.message`, `error` as a
/// string, `message`, `detail`), for rewrapping a foreign body.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let pick = |v: &serde_json::Value| v.as_str().map(str::to_string);
    v.pointer("/error/message")
        .and_then(pick)
        .or_else(|| v.get("error").and_then(pick))
        .or_else(|| v.get("message").and_then(pick))
        .or_else(|| v.get("detail").and_then(pick))
}
