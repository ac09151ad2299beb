//! OpenTelemetry traces (`[telemetry]`): W3C trace context in (a caller's `traceparent`
//! continued) and out (each upstream attempt's span sent as `traceparent`, so a request
//! through two routers is one trace), and the spans of a finished request exported over
//! OTLP/HTTP ([`Tracer`]). Spans are built once, when the request is recorded, from the
//! timings its outcome carries; with telemetry off nothing here runs.

mod export;

pub use export::{TelemetryError, Tracer};

use crate::outcome::Trace;
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;

/// The W3C trace context headers.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C vendor-specific trace state header.
pub const TRACESTATE: &str = "tracestate";

/// A new span id (never 0, which W3C reserves as invalid).
pub fn new_span_id() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

fn new_trace_id() -> u128 {
    loop {
        let v = fastrand::u128(..);
        if v != 0 {
            return v;
        }
    }
}

/// The (trace id, parent span id, sampled) of a `traceparent` value, if it is valid: version
/// `00` exactly as specified, or a later version's first four fields; all-zero ids and
/// version `ff` are invalid.
pub fn parse_traceparent(v: &str) -> Option<(u128, u64, bool)> {
    let v = v.trim();
    let mut parts = v.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let span_id = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id, flags & 1 == 1))
}

/// The `traceparent` value naming `span_id` in `trace_id`.
pub fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> HeaderValue {
    let v = format!(
        "00-{trace_id:032x}-{span_id:016x}-{}",
        if sampled { "01" } else { "00" }
    );
    HeaderValue::try_from(v).expect("hex digits and dashes are a valid header value")
}

/// What a traced request sends upstream with each attempt: its trace id, sampling decision
/// and the caller's `tracestate`.
#[derive(Debug, Clone)]
pub struct Propagation {
    trace_id: u128,
    sampled: bool,
    state: Option<HeaderValue>,
}

impl Propagation {
    /// The propagation of `trace`.
    pub fn of(trace: &Trace) -> Self {
        Propagation {
            trace_id: trace.trace_id,
            sampled: trace.sampled,
            state: trace
                .tracestate
                .as_deref()
                .and_then(|s| HeaderValue::from_str(s).ok()),
        }
    }

    /// The `traceparent` and `tracestate` of the attempt whose span is `span_id`.
    pub fn headers(&self, span_id: u64) -> (HeaderValue, Option<HeaderValue>) {
        (
            traceparent(self.trace_id, span_id, self.sampled),
            self.state.clone(),
        )
    }
}

/// Starts a request's trace: the caller's trace continued (its sampling decision kept), or a
/// new one sampled with probability `ratio`.
pub fn start(headers: &HeaderMap, ratio: f64) -> Trace {
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let (trace_id, parent_span_id, sampled) = match parent {
        Some((t, s, sampled)) => (t, Some(s), sampled),
        None => (
            new_trace_id(),
            None,
            ratio >= 1.0 || fastrand::f64() < ratio,
        ),
    };
    let tracestate = parent
        .and(headers.get(TRACESTATE))
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 512)
        .map(Arc::from);
    Trace {
        trace_id,
        span_id: new_span_id(),
        parent_span_id,
        sampled,
        tracestate,
        stages: Vec::new(),
        plan: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_and_written_as_w3c_specifies() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (t, s, sampled) = parse_traceparent(v).unwrap();
        assert_eq!(t, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(s, 0x00f067aa0ba902b7);
        assert!(sampled);
        assert_eq!(traceparent(t, s, true), v);
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .map(|p| p.2),
            Some(false)
        );
        // A later version may add fields; version 00 may not.
        assert!(parse_traceparent(&format!("01{}-extra", &v[2..])).is_some());
        assert!(parse_traceparent(&format!("{v}-extra")).is_none());
        for bad in [
            "",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_callers_trace_is_continued_with_its_decision_and_state() {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        h.insert(TRACESTATE, HeaderValue::from_static("vendor=abc"));
        let t = start(&h, 1.0);
        assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(t.parent_span_id, Some(0x00f067aa0ba902b7));
        assert!(!t.sampled, "the caller decided not to sample");
        assert_eq!(t.tracestate.as_deref(), Some("vendor=abc"));
        assert_ne!(t.span_id, 0);
        let fresh = start(&HeaderMap::new(), 1.0);
        assert!(fresh.sampled && fresh.parent_span_id.is_none() && fresh.tracestate.is_none());
        assert!(!start(&HeaderMap::new(), 0.0).sampled);
    }
}
