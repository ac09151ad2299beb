//! The rate limits that apply to a caller's request, as each dialect's rate-limit headers
//! report them.

use std::sync::Arc;
use std::time::Duration;

/// One limit as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitWindow {
    /// The limit.
    pub limit: u64,
    /// The limit as a header value (made once per configuration, not per response).
    pub limit_value: http::HeaderValue,
    /// What is left of it now.
    pub remaining: u64,
    /// When it is whole again, from now.
    pub reset_after: Duration,
    /// When it is whole again, RFC 3339 UTC (for dialects that send a timestamp; shared, made
    /// once per window).
    pub reset_at: Arc<str>,
}

/// The request and token limits of one request (the tightest of each kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests.
    pub requests: Option<LimitWindow>,
    /// Tokens.
    pub tokens: Option<LimitWindow>,
}

impl RateLimits {
    /// Keeps, of each kind, the window with the least left.
    pub fn tighten(&mut self, requests: Option<LimitWindow>, tokens: Option<LimitWindow>) {
        fn keep(slot: &mut Option<LimitWindow>, w: Option<LimitWindow>) {
            if let Some(w) = w {
                if slot.as_ref().is_none_or(|s| w.remaining < s.remaining) {
                    *slot = Some(w);
                }
            }
        }
        keep(&mut self.requests, requests);
        keep(&mut self.tokens, tokens);
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }
}

/// Appends the decimal digits of `n`, without going through `fmt` (rate-limit headers are
/// written on every response of a limited caller).
pub fn push_digits(n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `n` as a header value.
pub fn count_value(n: u64) -> http::HeaderValue {
    let mut out = Vec::with_capacity(20);
    push_digits(n, &mut out);
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(out))
        .expect("digits are a valid header value")
}
