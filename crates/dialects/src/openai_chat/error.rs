//! The OpenAI error shape: `{"error":{"message","type","param","code"}}`, as a body and as a
//! final stream event.

use crate::canonical::{count_value, push_digits};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
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
/// reset as a duration (`20ms`, `17s`, `6m0s`); written into `h`.
pub fn rate_limit_headers(limits: &crate::canonical::RateLimits, h: &mut HeaderMap) {
    const NAMES: [[HeaderName; 3]; 2] = [
        [
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-reset-requests"),
        ],
        [
            HeaderName::from_static("x-ratelimit-limit-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
            HeaderName::from_static("x-ratelimit-reset-tokens"),
        ],
    ];
    for (w, [limit, remaining, reset]) in [&limits.requests, &limits.tokens].into_iter().zip(NAMES)
    {
        if let Some(w) = w {
            h.insert(limit, w.limit_value.clone());
            h.insert(remaining, count_value(w.remaining));
            h.insert(reset, duration(w.reset_after));
        }
    }
}

/// A duration as OpenAI writes it in rate-limit headers (`20ms`, `17s`, `6m0s`); the last
/// value made on this thread is reused while it reads the same (a second, mostly).
fn duration(d: std::time::Duration) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, Option<HeaderValue>)> = const { std::cell::RefCell::new((u64::MAX, None)) };
    }
    let ms = d.as_millis() as u64;
    // What the value reads: ms under a second, whole seconds (rounded up) above.
    let reads = if ms < 1000 {
        ms
    } else {
        1_000_000 + d.as_secs() + u64::from(d.subsec_nanos() > 0)
    };
    if let Some(v) = LAST.with(|l| {
        let l = l.borrow();
        (l.0 == reads).then(|| l.1.clone()).flatten()
    }) {
        return v;
    }
    let v = format_duration(d);
    LAST.with(|l| *l.borrow_mut() = (reads, Some(v.clone())));
    v
}

fn format_duration(d: std::time::Duration) -> HeaderValue {
    let ms = d.as_millis() as u64;
    let mut out = Vec::with_capacity(12);
    let mut push = |n: u64, unit: &[u8]| {
        push_digits(n, &mut out);
        out.extend_from_slice(unit);
    };
    if ms < 1000 {
        push(ms, b"ms");
    } else {
        let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if s < 60 {
            push(s, b"s");
        } else {
            push(s / 60, b"m");
            push(s % 60, b"s");
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(out))
        .expect("digits and units are a valid header value")
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
