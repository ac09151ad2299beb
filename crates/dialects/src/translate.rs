//! Dispatch by dialect for translation through the canonical model, and for error shapes. The
//! router calls these and never looks inside a dialect itself.

use crate::canonical::{EncodeOptions, Event, Request, Response, Warning};
use crate::openai_responses::{self as or, ToolShapes};
use crate::{DecodeError, Dialect, anthropic_messages as am, openai_chat as oc};

/// What encoding an answer for the caller needs: the name the caller asked for, a timestamp,
/// whether a Chat caller asked for the usage chunk, and the caller's tool shapes (Responses).
#[derive(Debug, Clone, Default)]
pub struct AnswerContext {
    /// The model (group) the caller asked for.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// Chat: send the final usage chunk.
    pub include_usage: bool,
    /// Responses: which tools are custom or namespaced.
    pub shapes: ToolShapes,
}
use bytes::{Bytes, BytesMut};

/// Decodes a request body of `d` into the canonical model.
pub fn decode_request(d: Dialect, body: &[u8]) -> Result<(Request, Vec<Warning>), DecodeError> {
    match d {
        Dialect::OpenAiChat => oc::decode::decode_request(body),
        Dialect::AnthropicMessages => am::decode::decode_request(body),
        Dialect::OpenAiResponses => or::decode::decode_request(body),
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
        Dialect::OpenAiChat => {
            let (body, warnings) = oc::encode::encode_request(req, opts);
            EncodedRequest {
                body,
                warnings,
                structured_tool: None,
            }
        }
        Dialect::OpenAiResponses => {
            let (body, warnings) = or::encode::encode_request(req, opts);
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
pub fn decode_response(d: Dialect, body: &[u8]) -> Result<Response, DecodeError> {
    match d {
        Dialect::OpenAiChat => oc::decode::decode_response(body),
        Dialect::AnthropicMessages => am::decode::decode_response(body),
        Dialect::OpenAiResponses => or::decode::decode_response(body),
    }
}

/// Encodes a canonical response in dialect `d` for the caller.
pub fn encode_response(d: Dialect, r: &Response, cx: &AnswerContext) -> Vec<u8> {
    match d {
        Dialect::OpenAiChat => oc::encode::encode_response(r, &cx.model, cx.created),
        Dialect::OpenAiResponses => {
            or::encode::encode_response(r, &cx.model, cx.created, &cx.shapes)
        }
        Dialect::AnthropicMessages => am::encode::encode_response(r, &cx.model),
    }
}

/// A stream decoder for an upstream dialect.
#[derive(Debug)]
pub enum StreamDecoder {
    /// Chat chunks.
    Chat(oc::stream::StreamDecoder),
    /// Anthropic events.
    Anthropic(am::stream::StreamDecoder),
    /// Responses events.
    Responses(or::stream::StreamDecoder),
}

impl StreamDecoder {
    /// A decoder for `d`.
    pub fn new(d: Dialect, structured_tool: Option<String>) -> Self {
        match d {
            Dialect::AnthropicMessages => {
                StreamDecoder::Anthropic(am::stream::StreamDecoder::new(structured_tool))
            }
            Dialect::OpenAiResponses => StreamDecoder::Responses(or::stream::StreamDecoder::new()),
            Dialect::OpenAiChat => StreamDecoder::Chat(oc::stream::StreamDecoder::new()),
        }
    }

    /// Decodes one event's data.
    pub fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        match self {
            StreamDecoder::Chat(s) => s.decode(data, out),
            StreamDecoder::Anthropic(s) => s.decode(data, out),
            StreamDecoder::Responses(s) => s.decode(data, out),
        }
    }

    /// The upstream ended; returns whether it ended properly.
    pub fn end(&mut self, out: &mut Vec<Event>) -> bool {
        match self {
            StreamDecoder::Chat(s) => s.end(out),
            StreamDecoder::Anthropic(s) => s.end(out),
            StreamDecoder::Responses(s) => s.end(out),
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
    /// Responses events.
    Responses(Box<or::stream::StreamEncoder>),
}

impl StreamEncoder {
    /// An encoder for a caller speaking `d`.
    pub fn new(d: Dialect, cx: AnswerContext) -> Self {
        match d {
            Dialect::AnthropicMessages => {
                StreamEncoder::Anthropic(am::stream::StreamEncoder::new(&cx.model))
            }
            Dialect::OpenAiResponses => StreamEncoder::Responses(Box::new(
                or::stream::StreamEncoder::new(&cx.model, cx.created, cx.shapes),
            )),
            Dialect::OpenAiChat => StreamEncoder::Chat(oc::stream::StreamEncoder::new(
                &cx.model,
                cx.created,
                cx.include_usage,
            )),
        }
    }

    /// Appends one event's SSE bytes.
    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        match self {
            StreamEncoder::Chat(s) => s.encode(ev, out),
            StreamEncoder::Anthropic(s) => s.encode(ev, out),
            StreamEncoder::Responses(s) => s.encode(ev, out),
        }
    }

    /// What had to be dropped.
    pub fn warnings(&self) -> Vec<Warning> {
        match self {
            StreamEncoder::Chat(s) => s.warnings(),
            StreamEncoder::Anthropic(_) | StreamEncoder::Responses(_) => Vec::new(),
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
        Dialect::OpenAiResponses => (
            status,
            or::error::encode_error(status, message, param, code),
        ),
        Dialect::OpenAiChat => (
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
        Dialect::OpenAiResponses => or::error::encode_stream_error(message, code),
        Dialect::OpenAiChat => oc::error::encode_stream_error(status, message, code),
    }
}

/// Writes the rate-limit headers a caller of dialect `d` expects on every response into `h`.
pub fn rate_limit_headers(
    d: Dialect,
    limits: &crate::canonical::RateLimits,
    h: &mut http::HeaderMap,
) {
    match d {
        Dialect::AnthropicMessages => am::error::rate_limit_headers(limits, h),
        Dialect::OpenAiResponses => or::error::rate_limit_headers(limits, h),
        Dialect::OpenAiChat => oc::error::rate_limit_headers(limits, h),
    }
}

/// Whether an upstream error body is already in dialect `d`'s shape.
pub fn is_error_body(d: Dialect, body: &[u8]) -> bool {
    match d {
        Dialect::AnthropicMessages => am::error::is_error_body(body),
        Dialect::OpenAiResponses => or::error::is_error_body(body),
        Dialect::OpenAiChat => oc::error::is_error_body(body),
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
