//! Wire types and framing for the API dialects smart-router speaks. Pure: no I/O, no runtime.
//!
//! Main pieces:
//! - [`sse`]: Server-Sent Events framing (split a byte stream into events, encode events), with
//!   no knowledge of any dialect.
//! - [`canonical`]: the dialect-neutral view the router's core works with: a
//!   [`canonical::RequestSummary`] (group, stream, needs, token estimate) and [`canonical::Usage`].
//! - [`openai_chat`], [`anthropic_messages`], [`openai_responses`]: one module per dialect, each
//!   with the same files (`types`, `decode`, `encode`, `stream`, `error`): wire types, the
//!   passthrough inspection (a summary plus the byte spans to rewrite), decoding into and
//!   encoding from the canonical model (requests, responses, stream events), the stream usage
//!   tap and the error shape.
//! - [`passthrough`] and [`translate`]: dispatch by dialect, so the router never looks inside one.
//! - [`text`]: where text lives in each dialect's bodies (prompts, answers, tool arguments and
//!   results), for content stages such as PII filtering.
//! - `scan` (private): what every inspection shares — the body-shape check (a JSON object, never
//!   an array read positionally), message checks and text statistics gathered in the same pass.
//!
//! Data flow on the passthrough path: request bytes -> `passthrough::inspect_request` (one
//! borrowed parse) -> `passthrough::rewrite_request` (byte splice, no re-serialise) -> upstream;
//! response bytes -> `passthrough::response_usage` or, for streams, `sse::Splitter` (bounded)
//! and `passthrough::tap_event`. Translation: `translate::decode_request` -> canonical ->
//! `translate::encode_request`, and back with the response and stream codecs.

pub mod anthropic_messages;
pub mod canonical;
pub mod openai_chat;
pub mod openai_responses;
pub mod passthrough;
mod places;
mod scan;
pub mod sse;
pub mod text;
pub mod translate;

/// Why a request or response body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not valid JSON (or not of the expected shape); names line and column.
    #[error("invalid JSON body: {message} at line {line} column {column}")]
    Json {
        /// serde_json's description of the problem.
        message: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// The body is empty (or only whitespace).
    #[error("the request body is empty; send a JSON object")]
    EmptyBody,
    /// The body is JSON but not an object (an array, a string, a number, ...).
    #[error("the request body must be a JSON object, not {found}")]
    NotAnObject {
        /// What was found instead (`an array`, `a string`, ...).
        found: &'static str,
    },
    /// A required field is absent.
    #[error("missing required parameter: '{field}'")]
    MissingField {
        /// The JSON field name.
        field: &'static str,
    },
    /// A field has the wrong type or value.
    #[error("invalid value for '{field}': {reason}")]
    InvalidField {
        /// The JSON field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DecodeError {
    /// The JSON field the error is about, if any (OpenAI's `param`).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DecodeError::Json { .. } | DecodeError::EmptyBody | DecodeError::NotAnObject { .. } => {
                None
            }
            DecodeError::MissingField { field } | DecodeError::InvalidField { field, .. } => {
                Some(field)
            }
        }
    }
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        let full = e.to_string();
        // serde_json appends " at line L column C"; keep only the description.
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        DecodeError::Json {
            message,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// The API dialects: what a client speaks on a surface, or what an upstream provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions.
    OpenAiChat,
    /// OpenAI Responses.
    OpenAiResponses,
    /// Anthropic Messages.
    AnthropicMessages,
}

impl Dialect {
    /// Request headers of this dialect's protocol that a same-dialect upstream should receive
    /// as the caller sent them (Anthropic's version and beta flags).
    pub fn forwarded_headers(self) -> &'static [&'static str] {
        match self {
            Dialect::AnthropicMessages => anthropic_messages::FORWARDED_HEADERS,
            Dialect::OpenAiChat | Dialect::OpenAiResponses => &[],
        }
    }

    /// Stable lower-case name, for logs, metrics labels and usage records.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAiChat => "openai_chat",
            Dialect::OpenAiResponses => "openai_responses",
            Dialect::AnthropicMessages => "anthropic_messages",
        }
    }
}
