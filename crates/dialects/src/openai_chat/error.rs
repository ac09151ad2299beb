//! The OpenAI error shape: `{"error":{"message","type","param","code"}}`, as a body and as a
//! final stream event.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An OpenAI error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The inner error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Human-readable description.
    pub message: String,
    /// Error class (`invalid_request_error`, `server_error`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault, if any.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `invalid_api_key`, ...).
    pub code: Option<String>,
}

/// The OpenAI error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "invalid_request_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Encodes an error body for `status`.
pub fn encode_error(
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    let body = ErrorBody {
        error: ErrorObject {
            message: message.to_string(),
            kind: match code {
                // OpenAI's own spelling for an exhausted quota (SDKs and users look for it).
                Some("insufficient_quota") => "insufficient_quota",
                _ => error_type(status),
            }
            .to_string(),
            param: param.map(str::to_string),
            code: code.map(str::to_string),
        },
    };
    serde_json::to_vec(&body).expect("an error body serialises")
}

/// The SSE event that ends a stream with an error once streaming has begun (the OpenAI SDKs
/// raise on a `data:` payload with an `error` key).
pub fn encode_stream_error(status: u16, message: &str, code: Option<&str>) -> Bytes {
    crate::sse::encode(None, &encode_error(status, message, None, code))
}

/// OpenAI's rate-limit headers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the
/// reset as a duration (`20ms`, `17s`, `6m0s`).
pub fn rate_limit_headers(limits: &crate::canonical::RateLimits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let kinds = [
        (
            &limits.requests,
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
        ),
        (
            &limits.tokens,
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        ),
    ];
    for (w, [limit, remaining, reset]) in kinds {
        if let Some(w) = w {
            out.push((limit, w.limit.to_string()));
            out.push((remaining, w.remaining.to_string()));
            out.push((reset, duration(w.reset_after)));
        }
    }
    out
}

/// A duration as OpenAI writes it in rate-limit headers.
fn duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// Whether an upstream error body is already in the OpenAI shape (then it is returned as is).
pub fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorBody>(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn shape_and_types() {
        let b = encode_error(
            404,
            "The model `x` does not exist",
            Some("model"),
            Some("model_not_found"),
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(is_error_body(&b));
        assert_eq!(error_type(502), "server_error");
        assert_eq!(
            crate::translate::error_message(br#"{"detail":"bad"}"#).as_deref(),
            Some("bad")
        );
        assert!(!is_error_body(br#"{"detail":"bad"}"#));
        let ev = encode_stream_error(502, "cut", Some("upstream_stream_broken"));
        assert!(ev.starts_with(b"data: {\"error\":"));
        assert!(ev.ends_with(b"\n\n"));
    }
}
