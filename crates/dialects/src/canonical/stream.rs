//! Canonical stream events: what every dialect's stream decoder emits and encoder consumes.

use super::{FinishReason, Usage};

/// One event of a streamed answer. Tool calls are addressed by their ordinal in the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The answer begins.
    Start {
        /// Response id.
        id: String,
        /// Model that answers.
        model: String,
    },
    /// A piece of text.
    TextDelta(String),
    /// A piece of reasoning text.
    ReasoningDelta(String),
    /// The signature that closes a reasoning block (Anthropic).
    ReasoningSignature(String),
    /// A tool call begins.
    ToolCallStart {
        /// Ordinal of the call in this answer.
        index: usize,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A piece of a tool call's JSON arguments.
    ToolCallArgs {
        /// Ordinal of the call.
        index: usize,
        /// The fragment.
        delta: String,
    },
    /// Token usage so far (later events replace earlier counts that are non-zero).
    Usage(Usage),
    /// The answer ends.
    Finish {
        /// Why.
        reason: FinishReason,
        /// The stop sequence hit, when known.
        stop_sequence: Option<String>,
    },
    /// The upstream reported an error mid-stream.
    Error {
        /// Its message.
        message: String,
    },
}
