//! The Anthropic error shape: `{"type":"error","error":{"type","message"}}`, as a body and as
//! a final `event: error` once a stream has begun.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
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
/// the reset as an RFC 3339 timestamp; written into `h`.
pub fn rate_limit_headers(limits: &crate::canonical::RateLimits, h: &mut HeaderMap) {
    const NAMES: [[HeaderName; 3]; 2] = [
        [
            HeaderName::from_static("anthropic-ratelimit-requests-limit"),
            HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
            HeaderName::from_static("anthropic-ratelimit-requests-reset"),
        ],
        [
            HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
            HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
            HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
        ],
    ];
    for (w, [limit, remaining, reset]) in [&limits.requests, &limits.tokens].into_iter().zip(NAMES)
    {
        if let Some(w) = w {
            h.insert(limit, w.limit_value.clone());
            h.insert(remaining, crate::canonical::count_value(w.remaining));
            if let Ok(v) = HeaderValue::from_str(&w.reset_at) {
                h.insert(reset, v);
            }
        }
    }
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
