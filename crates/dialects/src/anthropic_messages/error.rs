//! The Anthropic error shape: `{"type":"error","error":{"type","message"}}`, as a body and as
//! a final `event: error` once a stream has begun.

use bytes::Bytes;
use serde_json::{Value, json};

/// The status an Anthropic client should see for a router status: 503 (nothing available
/// right now) is Anthropic's 529 `overloaded_error`, which Claude Code retries after
/// `Retry-After`.
pub fn surface_status(status: u16) -> u16 {
    if status == 503 { 529 } else { status }
}

/// The Anthropic error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Encodes an error body for `status`.
pub fn encode_error(status: u16, message: &str) -> Vec<u8> {
    let v = json!({"type": "error", "error": {"type": error_type(status), "message": message}});
    serde_json::to_vec(&v).expect("an error body serialises")
}

/// The `event: error` that ends a stream that has begun.
pub fn encode_stream_error(status: u16, message: &str) -> Bytes {
    crate::sse::encode(Some("error"), &encode_error(status, message))
}

/// Anthropic's rate-limit headers: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`,
/// the reset as an RFC 3339 timestamp.
pub fn rate_limit_headers(limits: &crate::canonical::RateLimits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let kinds = [
        (
            &limits.requests,
            [
                "anthropic-ratelimit-requests-limit",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
            ],
        ),
        (
            &limits.tokens,
            [
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ],
        ),
    ];
    for (w, [limit, remaining, reset]) in kinds {
        if let Some(w) = w {
            out.push((limit, w.limit.to_string()));
            out.push((remaining, w.remaining.to_string()));
            out.push((reset, w.reset_at.to_string()));
        }
    }
    out
}

/// Whether an upstream error body is already in the Anthropic shape.
pub fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).ok().is_some_and(|v| {
        v["type"] == "error" && v.pointer("/error/message").is_some_and(Value::is_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let b = encode_error(529, "busy");
        assert!(is_error_body(&b));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(surface_status(503), 529);
        assert!(encode_stream_error(500, "x").starts_with(b"event: error\ndata: {"));
    }
}
