//! Usage: finished request outcomes ([`crate::outcome::RequestOutcome`], handed over once by the
//! pipeline's `record` stage) are logged, counted in the metrics and written to the usage store
//! as [`UsageRecord`]s through the bounded [`Writer`]; never any content.

pub mod capture;
mod client;
pub mod record;
pub mod retention;
pub mod store;
pub mod writer;

pub use client::detect_client;
pub use record::{CapturedContent, TargetInfo, TargetTable, UsageRecord};
pub use writer::{Writer, WriterStats};

pub use crate::outcome::{Annotation, Attempt, RequestOutcome};

use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Receives finished outcomes: logs each, counts it in the metrics, and hands its usage record
/// to the writer (bounded; drops counted). Tests and embedders may also subscribe to the
/// outcomes (a bounded queue: when it is full an outcome is not queued there, and is still
/// logged, counted and stored).
#[derive(Debug)]
pub struct Recorder {
    /// The metrics registry.
    pub metrics: Metrics,
    /// The hash of the config this recorder belongs to (on every record).
    config_hash: Arc<str>,
    targets: TargetTable,
    writer: Option<Arc<Writer>>,
    captures: Option<capture::CaptureSink>,
    outcomes: Option<mpsc::Sender<RequestOutcome>>,
    tracer: Option<Arc<crate::telemetry::Tracer>>,
}

impl Recorder {
    /// A recorder that logs and counts, pricing with `config`'s targets.
    pub fn new(config: &Config) -> Self {
        Recorder {
            metrics: Metrics::for_config(config),
            config_hash: config.hash.as_str().into(),
            targets: TargetTable::from_config(config),
            writer: None,
            captures: None,
            outcomes: None,
            tracer: None,
        }
    }

    /// The recorder for a reloaded `config`: the same metrics series, writer and outcome
    /// queue, with `config`'s targets and group names.
    pub fn reconfigured(&self, config: &Config) -> Self {
        Recorder {
            metrics: self.metrics.reconfigured(config),
            config_hash: config.hash.as_str().into(),
            targets: TargetTable::from_config(config),
            writer: self.writer.clone(),
            captures: self.captures.clone(),
            outcomes: self.outcomes.clone(),
            tracer: self.tracer.clone(),
        }
    }

    /// Also exports the traces of sampled requests through `tracer`.
    pub fn with_tracer(mut self, tracer: Arc<crate::telemetry::Tracer>) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// The trace exporter, when telemetry is on.
    pub fn tracer(&self) -> Option<&Arc<crate::telemetry::Tracer>> {
        self.tracer.as_ref()
    }

    /// The hash of the config requests recorded here are served under.
    pub fn config_hash(&self) -> Arc<str> {
        self.config_hash.clone()
    }

    /// Also sends usage records to `writer`.
    pub fn with_writer(mut self, writer: Arc<Writer>) -> Self {
        self.writer = Some(writer);
        self
    }

    /// Also stores captured content through `sink`.
    pub fn with_captures(mut self, sink: capture::CaptureSink) -> Self {
        self.captures = Some(sink);
        self
    }

    /// Where captured content goes, when there is a store.
    pub fn captures(&self) -> Option<&capture::CaptureSink> {
        self.captures.as_ref()
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

    /// Every target's names and price.
    pub fn targets(&self) -> &TargetTable {
        &self.targets
    }

    /// Logs, counts and stores a finished outcome, costed at `cost_usd` (called once per
    /// request, by the pipeline's `record` stage).
    /// The cost in USD of a finished outcome (its usage at the serving, or last tried,
    /// target's prices).
    pub fn cost(&self, o: &RequestOutcome) -> f64 {
        let price = o
            .served_or_last()
            .and_then(|a| self.targets.get(a.target).price);
        o.usage.map_or(0.0, |u| record::cost(price, &u))
    }

    pub(crate) fn record(&self, o: RequestOutcome, cost_usd: f64) {
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
        self.metrics.observe(&o, cost_usd);
        if let (Some(t), Some(trace)) = (&self.tracer, &o.trace) {
            t.export(&o, trace, &|id| self.targets.get(id).gen_ai_provider);
        }
        if let Some(w) = &self.writer {
            w.submit(UsageRecord::from_outcome(&o, cost_usd));
        }
        if let Some(tx) = &self.outcomes {
            let _ = tx.try_send(o);
        }
    }
}
