//! What the routing core needs to know about a request, whatever its dialect.

/// Capabilities a request needs from a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The request offers tools (function calling).
    pub tools: bool,
    /// The request carries image inputs.
    pub images: bool,
    /// The request asks for a JSON-schema constrained response.
    pub json_schema: bool,
}

/// A dialect-neutral summary of a request: enough to authorise, route and record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    /// The model group the caller asked for (the request's `model`).
    pub group: String,
    /// Whether the caller asked for a streamed response.
    pub stream: bool,
    /// Capabilities the request needs.
    pub needs: Needs,
    /// A rough estimate of the prompt size in tokens (about four bytes of text per token).
    pub estimated_prompt_tokens: u32,
    /// The caller's cap on generated tokens, when it set one.
    pub max_output_tokens: Option<u32>,
    /// A key identifying the caller's conversation (e.g. `prompt_cache_key`), for session
    /// affinity.
    pub session_key: Option<String>,
}
