//! Responses errors: the OpenAI error shape for whole responses (the Responses API answers
//! errors like every OpenAI endpoint), and `response.failed` once a stream has begun.

use crate::sse;
use bytes::Bytes;
use serde_json::json;

/// An error body for a whole response (OpenAI's shape).
pub fn encode_error(
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    crate::openai_chat::error::encode_error(status, message, param, code)
}

/// Rate-limit headers (OpenAI's), written into `h`.
pub fn rate_limit_headers(limits: &crate::canonical::RateLimits, h: &mut http::HeaderMap) {
    crate::openai_chat::error::rate_limit_headers(limits, h)
}

/// Whether an upstream error body is already in the Responses (OpenAI) error shape.
pub fn is_error_body(body: &[u8]) -> bool {
    crate::openai_chat::error::is_error_body(body)
}

/// The event that ends a Responses stream with an error once it has begun (Codex and the SDK
/// read `response.failed`).
pub fn encode_stream_error(message: &str, code: Option<&str>) -> Bytes {
    let v = json!({
        "type": "response.failed", "sequence_number": 1_000_000,
        "response": {"id": "resp_error", "object": "response", "status": "failed", "output": [],
                     "error": {"code": code.unwrap_or("server_error"), "message": message}},
    });
    sse::encode(
        Some("response.failed"),
        &serde_json::to_vec(&v).expect("JSON serialises"),
    )
}
