//! Token usage in one shape for every dialect.

/// Token counts of one response. `input_tokens` includes cached reads, as OpenAI counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Completion tokens, reasoning included.
    pub output_tokens: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: u64,
}
