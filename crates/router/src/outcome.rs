//! What happened to one request: the plain data of an outcome (caller, group, attempts, usage,
//! status, timings), filled in by the pipeline's `record` stage and read by the usage recorder
//! and the metrics. A leaf: no I/O, nothing else of the router.

use dialects::canonical::Usage;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One attempt at one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Id of the target tried.
    pub target: usize,
    /// Provider name.
    pub provider: Arc<str>,
    /// Upstream model.
    pub model: Arc<str>,
    /// `ok` or the error class.
    pub outcome: &'static str,
    /// Upstream HTTP status, when one came back.
    pub status: Option<u16>,
    /// Time spent on the attempt until it was decided.
    pub latency: Duration,
    /// When it started, after the request's arrival.
    pub offset: Duration,
    /// Its trace span id (sent upstream in `traceparent`); 0 when the request is not traced.
    pub span_id: u64,
}

/// Everything recorded about one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOutcome {
    /// The request id.
    pub request_id: String,
    /// The sending router's name, when the request came through another router.
    pub parent_id: Option<String>,
    /// When the request arrived.
    pub started_at: SystemTime,
    /// Caller name, once authenticated.
    pub caller: Option<String>,
    /// Caller's project.
    pub project: Option<String>,
    /// Caller's team.
    pub team: Option<String>,
    /// Caller's environment.
    pub environment: Option<String>,
    /// The surface (client dialect).
    pub surface: &'static str,
    /// The client software (from the user agent).
    pub client: &'static str,
    /// The group asked for.
    pub group: Option<String>,
    /// Streamed response.
    pub stream: bool,
    /// HTTP status sent to the client (499: the client went away first).
    pub http_status: u16,
    /// Error class, when the request failed (also after a 200 when a stream broke).
    pub error_kind: Option<&'static str>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// The attempt that served the response (index into `attempts`).
    pub served_by: Option<usize>,
    /// Token usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Total time until the response ended.
    pub latency: Duration,
    /// Time until the first response byte went to the client.
    pub ttft: Option<Duration>,
    /// Session affinity: hit (`true`), miss (`false`), or no session/affinity (`None`).
    pub affinity_hit: Option<bool>,
    /// What translation dropped or changed (never content).
    pub warnings: Vec<String>,
    /// Time spent in the router until the response head went out, upstream waits excluded.
    pub overhead: Option<Duration>,
    /// What governance stages noted about the request (stage name, note), in stage order.
    pub annotations: Vec<Annotation>,
    /// The quota or budget that refused the request, or would have (shadow mode).
    pub quota: Option<Arc<str>>,
    /// The hash of the config the request was served under.
    pub config_hash: Arc<str>,
    /// The capture policy that stored the request's content.
    pub capture_policy: Option<Arc<str>>,
    /// The routing rule that decided the request (routed or denied it).
    pub rule: Option<Arc<str>>,
    /// The request's trace, when telemetry is on.
    pub trace: Option<Box<Trace>>,
}

/// A request's place in a distributed trace (W3C trace context) and the timings its spans
/// are built from; filled in only when telemetry is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The trace id (the caller's, or a new one).
    pub trace_id: u128,
    /// This request's span id.
    pub span_id: u64,
    /// The caller's span, when the caller sent a `traceparent`.
    pub parent_span_id: Option<u64>,
    /// Whether the trace is sampled (its spans are exported).
    pub sampled: bool,
    /// The caller's `tracestate`, passed on unchanged.
    pub tracestate: Option<Arc<str>>,
    /// Governance stages that ran: name, start and end after arrival, whether it denied.
    pub stages: Vec<(Arc<str>, Duration, Duration, bool)>,
    /// Routing: start and end after arrival, targets planned.
    pub plan: Option<(Duration, Duration, usize)>,
}

/// A governance stage's note on a request's record (never content).
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The stage's name.
    pub stage: Arc<str>,
    /// What it noted.
    pub note: String,
}

impl RequestOutcome {
    /// Whether a target other than the first attempted one served the request.
    pub fn fallback_used(&self) -> bool {
        self.served_by.is_some_and(|i| i > 0)
    }

    /// The attempt that served the response.
    pub fn served(&self) -> Option<&Attempt> {
        self.served_by.and_then(|i| self.attempts.get(i))
    }

    /// The attempt that served, or else the last one tried (what a failed request is
    /// attributed to).
    pub fn served_or_last(&self) -> Option<&Attempt> {
        self.served().or(self.attempts.last())
    }
}
