//! Anthropic Messages wire shapes used by more than one direction. Content blocks are handled
//! as JSON in `decode`/`encode` so unknown block types can be dropped with a warning.

use serde::{Deserialize, Serialize};

/// `usage` as Anthropic reports it: `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

impl From<Usage> for crate::canonical::Usage {
    fn from(u: Usage) -> Self {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let write = u.cache_creation_input_tokens.unwrap_or(0);
        crate::canonical::Usage {
            input_tokens: u.input_tokens + read + write,
            cached_input_tokens: read,
            cache_write_tokens: write,
            output_tokens: u.output_tokens,
            reasoning_tokens: 0,
        }
    }
}

impl From<crate::canonical::Usage> for Usage {
    fn from(u: crate::canonical::Usage) -> Self {
        Usage {
            input_tokens: u
                .input_tokens
                .saturating_sub(u.cached_input_tokens)
                .saturating_sub(u.cache_write_tokens),
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: Some(u.cache_write_tokens),
            cache_read_input_tokens: Some(u.cached_input_tokens),
        }
    }
}

/// Anthropic stop reason for a canonical finish reason.
pub fn stop_reason(f: crate::canonical::FinishReason) -> &'static str {
    use crate::canonical::FinishReason::*;
    match f {
        Stop => "end_turn",
        Length => "max_tokens",
        ToolCalls => "tool_use",
        StopSequence => "stop_sequence",
        ContentFilter => "refusal",
    }
}

/// Canonical finish reason for an Anthropic stop reason.
pub fn finish_reason(s: &str) -> crate::canonical::FinishReason {
    use crate::canonical::FinishReason::*;
    match s {
        "max_tokens" | "model_context_window_exceeded" => Length,
        "tool_use" => ToolCalls,
        "stop_sequence" => StopSequence,
        "refusal" => ContentFilter,
        _ => Stop,
    }
}
