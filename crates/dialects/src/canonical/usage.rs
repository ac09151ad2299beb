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

impl Usage {
    /// Takes every non-zero count of `later` (streams report usage in pieces).
    pub fn merge(&mut self, later: Usage) {
        let pick = |a: &mut u64, b: u64| {
            if b != 0 {
                *a = b;
            }
        };
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.cached_input_tokens, later.cached_input_tokens);
        pick(&mut self.cache_write_tokens, later.cache_write_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(&mut self.reasoning_tokens, later.reasoning_tokens);
    }
}
