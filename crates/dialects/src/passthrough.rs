//! Same-dialect passthrough: inspect a request in one borrowed parse (summary plus the byte
//! spans to rewrite), rewrite it by splicing bytes, and tap usage from the response.

pub use crate::scan::{Inspected, Tap};

use crate::canonical::Usage;
use crate::{DecodeError, Dialect, anthropic_messages, openai_chat, openai_responses};
use std::ops::Range;

/// Inspects a request body of `dialect`.
pub fn inspect_request(dialect: Dialect, body: &[u8]) -> Result<Inspected, DecodeError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::decode::inspect_request(body),
        Dialect::AnthropicMessages => anthropic_messages::decode::inspect_request(body),
        Dialect::OpenAiResponses => openai_responses::decode::inspect_request(body),
    }
}

/// Inspects a token-count request of `dialect` (only Anthropic Messages has one).
pub fn inspect_count_tokens(dialect: Dialect, body: &[u8]) -> Result<Inspected, DecodeError> {
    match dialect {
        Dialect::AnthropicMessages => anthropic_messages::decode::inspect_count_tokens(body),
        other => inspect_request(other, body),
    }
}

/// Rewrites an inspected body for an upstream model of the same dialect by splicing bytes:
/// `model`, the output cap when `max_tokens` is given, and (Chat streams) `stream_options`.
/// Everything else stays byte-for-byte.
pub fn rewrite_request(
    body: &[u8],
    inspected: &Inspected,
    upstream_model: &str,
    max_tokens: Option<u32>,
) -> Vec<u8> {
    let model = serde_json::to_string(upstream_model).expect("a string serialises");
    let mut edits: Vec<(Range<usize>, String)> = vec![(inspected.model_span.clone(), model)];
    if let (Some(span), Some(n)) = (&inspected.max_tokens_span, max_tokens) {
        edits.push((span.clone(), n.to_string()));
    }
    if inspected.dialect == Dialect::OpenAiChat {
        edits.extend(openai_chat::encode::stream_options_edit(inspected));
    }
    edits.sort_by_key(|(span, _)| span.start);
    let extra: usize = edits.iter().map(|(_, s)| s.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut at = 0;
    for (span, text) in edits {
        out.extend_from_slice(&body[at..span.start]);
        out.extend_from_slice(text.as_bytes());
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// Reads usage from a whole response body of `dialect` (one parse).
pub fn response_usage(dialect: Dialect, body: &[u8]) -> Result<Option<Usage>, DecodeError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::decode::response_usage(body),
        Dialect::AnthropicMessages => anthropic_messages::decode::response_usage(body),
        Dialect::OpenAiResponses => openai_responses::decode::response_usage(body),
    }
}

/// Classifies one event (`event` name, `data` payload) of a `dialect` stream.
pub fn tap_event(dialect: Dialect, event: Option<&str>, data: &[u8]) -> Tap {
    match dialect {
        Dialect::OpenAiChat => openai_chat::stream::tap_chunk(data),
        Dialect::AnthropicMessages => anthropic_messages::stream::tap_event(event, data),
        Dialect::OpenAiResponses => openai_responses::stream::tap_event(event, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasoning effort each dialect asks for reaches the summary, bounded to known levels.
    #[test]
    fn reasoning_effort_is_read_in_every_dialect() {
        let cases: &[(Dialect, &str, Option<&str>)] = &[
            (
                Dialect::OpenAiChat,
                r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high"}"#,
                Some("high"),
            ),
            (
                Dialect::OpenAiChat,
                r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"turbo"}"#,
                Some("other"),
            ),
            (
                Dialect::OpenAiChat,
                r#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#,
                None,
            ),
            (
                Dialect::OpenAiResponses,
                r#"{"model":"g","input":"hi","reasoning":{"effort":"minimal","summary":"auto"}}"#,
                Some("minimal"),
            ),
            (
                Dialect::AnthropicMessages,
                r#"{"model":"g","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":32000}}"#,
                Some("high"),
            ),
            (
                Dialect::AnthropicMessages,
                r#"{"model":"g","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"output_config":{"effort":"low"}}"#,
                Some("low"),
            ),
        ];
        for (dialect, body, want) in cases {
            let got = inspect_request(*dialect, body.as_bytes())
                .unwrap()
                .summary
                .reasoning_effort;
            assert_eq!(got, *want, "{body}");
        }
    }
}
