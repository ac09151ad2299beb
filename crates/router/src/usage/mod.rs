//! Per-request outcomes: what happened to a request (caller, group, attempts, usage, status,
//! timings), recorded exactly once — when finished, or when dropped because the client left.
//! Outcomes are logged, counted in the metrics and written to the usage store as
//! [`UsageRecord`]s through the bounded [`Writer`]; never any content.

mod client;
pub mod record;
pub mod retention;
pub mod store;
pub mod writer;

pub use client::detect_client;
pub use record::{TargetInfo, TargetTable, UsageRecord};
pub use writer::{Writer, WriterConfig, WriterStats};

use crate::config::Config;
use crate::metrics::Metrics;
use dialects::canonical::Usage;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

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

/// Receives finished outcomes: logs each, counts it in the metrics, and hands its usage record
/// to the writer (bounded; drops counted). Tests may also subscribe to the outcomes.
#[derive(Debug)]
pub struct Recorder {
    /// The metrics registry.
    pub metrics: Metrics,
    targets: TargetTable,
    writer: Option<Arc<Writer>>,
    outcomes: Option<mpsc::Sender<RequestOutcome>>,
    dropped: AtomicU64,
}

impl Recorder {
    /// A recorder that logs and counts, pricing with `config`'s targets.
    pub fn new(config: &Config) -> Self {
        Recorder {
            metrics: Metrics::for_config(config),
            targets: TargetTable::from_config(config),
            writer: None,
            outcomes: None,
            dropped: AtomicU64::new(0),
        }
    }

    /// Also sends usage records to `writer`.
    pub fn with_writer(mut self, writer: Arc<Writer>) -> Self {
        self.writer = Some(writer);
        self
    }

    /// Also queues every outcome (for tests and embedders), `capacity` deep.
    pub fn with_outcomes(mut self, capacity: usize) -> (Self, mpsc::Receiver<RequestOutcome>) {
        let (tx, rx) = mpsc::channel(capacity);
        self.outcomes = Some(tx);
        (self, rx)
    }

    /// Names and price of the target with id `id`.
    pub fn target(&self, id: usize) -> &TargetInfo {
        self.targets.get(id)
    }

    /// The usage writer, when there is one.
    pub fn writer(&self) -> Option<&Arc<Writer>> {
        self.writer.as_ref()
    }

    /// Outcomes dropped because the outcome queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn record(&self, o: RequestOutcome) {
        let served = o.served();
        tracing::info!(
            request_id = %o.request_id,
            parent_id = o.parent_id.as_deref().unwrap_or("-"),
            caller = o.caller.as_deref().unwrap_or("-"),
            client = o.client,
            surface = o.surface,
            group = o.group.as_deref().unwrap_or("-"),
            provider = served.map_or("-", |a| &*a.provider),
            model = served.map_or("-", |a| &*a.model),
            status = o.http_status,
            error = o.error_kind.unwrap_or("-"),
            attempts = o.attempts.len(),
            stream = o.stream,
            latency_ms = o.latency.as_micros() as f64 / 1000.0,
            input_tokens = o.usage.map_or(0, |u| u.input_tokens),
            output_tokens = o.usage.map_or(0, |u| u.output_tokens),
            "request finished"
        );
        let price = o
            .served_or_last()
            .and_then(|a| self.targets.get(a.target).price);
        let cost_usd = o.usage.map_or(0.0, |u| record::cost(price, &u));
        self.metrics.observe(&o, cost_usd);
        if let Some(w) = &self.writer {
            w.submit(UsageRecord::from_outcome(&o, cost_usd));
        }
        if let Some(tx) = &self.outcomes {
            if tx.try_send(o).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// An outcome being filled in while the request runs. Dropping it unfinished records the
/// request as abandoned by the client (499).
#[derive(Debug)]
pub struct Outcome {
    record: Option<RequestOutcome>,
    started: Instant,
    recorder: Arc<Recorder>,
}

impl Outcome {
    /// Starts the outcome of a request that arrived at `started`.
    pub fn start(
        recorder: Arc<Recorder>,
        request_id: &str,
        surface: &'static str,
        started: Instant,
        started_at: SystemTime,
    ) -> Self {
        recorder.metrics.in_flight.inc();
        Outcome {
            record: Some(RequestOutcome {
                request_id: request_id.to_string(),
                parent_id: None,
                started_at,
                caller: None,
                project: None,
                team: None,
                environment: None,
                surface,
                client: "other",
                group: None,
                stream: false,
                http_status: 499,
                error_kind: Some("client_closed"),
                attempts: Vec::new(),
                served_by: None,
                usage: None,
                latency: Duration::ZERO,
                ttft: None,
                affinity_hit: None,
                warnings: Vec::new(),
                overhead: None,
            }),
            started,
            recorder,
        }
    }

    /// The record being filled in.
    pub fn get_mut(&mut self) -> &mut RequestOutcome {
        self.record
            .as_mut()
            .expect("an outcome is only taken when finished")
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Notes the first byte sent to the client.
    pub fn first_byte(&mut self) {
        let elapsed = self.started.elapsed();
        let r = self.get_mut();
        if r.ttft.is_none() {
            r.ttft = Some(elapsed);
        }
    }

    /// Finishes and records the outcome.
    pub fn finish(mut self, http_status: u16, error_kind: Option<&'static str>) {
        let elapsed = self.started.elapsed();
        let mut r = self.record.take().expect("finished once");
        r.http_status = http_status;
        r.error_kind = error_kind;
        r.latency = elapsed;
        self.recorder.metrics.in_flight.dec();
        self.recorder.record(r);
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.latency = self.started.elapsed();
            self.recorder.metrics.in_flight.dec();
            self.recorder.record(r);
        }
    }
}
