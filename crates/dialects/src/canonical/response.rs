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

impl Response {
    /// The answer to a JSON-schema request that was sent as forced tool `tool`: that tool's
    /// arguments become the text of the answer, and the turn ends normally.
    pub fn answer_structured(mut self, tool: &str) -> Response {
        let mut unwrapped = false;
        for part in &mut self.parts {
            if let Part::ToolCall {
                name, arguments, ..
            } = part
            {
                if name == tool {
                    *part = Part::Text(std::mem::take(arguments));
                    unwrapped = true;
                }
            }
        }
        if unwrapped && self.finish == FinishReason::ToolCalls {
            self.finish = FinishReason::Stop;
        }
        self
    }
}
