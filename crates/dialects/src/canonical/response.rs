//! Canonical (non-stream) responses.

use super::{Part, Usage};

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of turn.
    Stop,
    /// Hit the token cap.
    Length,
    /// Wants tool results.
    ToolCalls,
    /// Hit a stop sequence.
    StopSequence,
    /// Stopped by a content filter / refusal.
    ContentFilter,
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Provider's response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Assistant content: text, tool calls, reasoning.
    pub parts: Vec<Part>,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The stop sequence hit, when known.
    pub stop_sequence: Option<String>,
    /// Token usage.
    pub usage: Usage,
}
