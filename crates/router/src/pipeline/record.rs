//! Stage `record`: the request's outcome, owned by its context from arrival to the end of the
//! response, and changed only through the methods here. It is handed to the recorder exactly
//! once: when the response ends, or — if the client goes away first — when it is dropped
//! (recorded as 499 `client_closed`).

use super::Arrival;
use crate::auth::Caller;
use crate::outcome::{Annotation, Attempt, RequestOutcome};
use crate::policy::{Effects, Hold, Settled};
use crate::usage::Recorder;
use crate::usage::capture::PendingCapture;
use dialects::canonical::{RateLimits, Usage};
use dialects::{Dialect, translate};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request's outcome while it is being served.
#[derive(Debug)]
pub struct Outcome {
    record: Option<RequestOutcome>,
    started: Instant,
    recorder: Arc<Recorder>,
    /// What governance keeps until the request ends.
    holds: Vec<Box<dyn Hold>>,
    /// Rate limits for the response's headers.
    rate_limits: RateLimits,
    /// Router headers governance added.
    headers: Vec<(&'static str, String)>,
    /// Governance refused the request.
    refused: bool,
    /// The request's content capture, when a capture policy may store it.
    capture: Option<Box<PendingCapture>>,
}

impl Outcome {
    /// Starts the outcome of a request that arrived as `arrival`, on `surface`.
    pub fn start(
        recorder: Arc<Recorder>,
        arrival: &Arrival,
        surface: &'static str,
        client: &'static str,
    ) -> Self {
        recorder.metrics.in_flight.inc();
        Outcome {
            record: Some(RequestOutcome {
                request_id: arrival.request_id.to_string(),
                parent_id: None,
                started_at: arrival.started_at,
                caller: None,
                project: None,
                team: None,
                environment: None,
                surface,
                client,
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
                annotations: Vec::new(),
                quota: None,
                config_hash: recorder.config_hash(),
                capture_policy: None,
                rule: None,
                trace: None,
            }),
            started: arrival.started,
            recorder,
            holds: Vec::new(),
            rate_limits: RateLimits::default(),
            headers: Vec::new(),
            refused: false,
            capture: None,
        }
    }

    fn rec(&mut self) -> &mut RequestOutcome {
        self.record
            .as_mut()
            .expect("an outcome is only taken when finished")
    }

    /// The record so far.
    pub fn get(&self) -> &RequestOutcome {
        self.record
            .as_ref()
            .expect("an outcome is only taken when finished")
    }

    /// Starts the request's trace (telemetry on).
    pub fn trace(&mut self, trace: crate::outcome::Trace) {
        self.rec().trace = Some(Box::new(trace));
    }

    /// The request's trace, when it has one.
    pub fn traced(&mut self) -> Option<&mut crate::outcome::Trace> {
        self.rec().trace.as_deref_mut()
    }

    /// The authenticated caller, and the sending router's id when the request came through one.
    pub fn caller(&mut self, caller: &Caller, parent_id: Option<&str>) {
        let r = self.rec();
        r.caller = Some(caller.name.clone());
        r.project = caller.project.clone();
        r.team = caller.team.clone();
        r.environment = caller.environment.clone();
        r.parent_id = parent_id.map(str::to_string);
    }

    /// The group asked for (bounded: an unknown name is recorded cut to
    /// [`crate::bounds::MAX_NAME_LEN`]) and whether a stream was asked for.
    pub fn group(&mut self, group: &str, stream: bool) {
        let r = self.rec();
        r.group = Some(crate::bounds::clip(group, crate::bounds::MAX_NAME_LEN).into_owned());
        r.stream = stream;
    }

    /// Whether session affinity picked the first target.
    pub fn affinity(&mut self, hit: Option<bool>) {
        self.rec().affinity_hit = hit;
    }

    /// One upstream attempt, as it ended.
    pub fn attempt(&mut self, a: Attempt) {
        self.rec().attempts.push(a);
    }

    /// The last attempt is the one that answers.
    pub fn served_by_last(&mut self) {
        let r = self.rec();
        r.served_by = r.attempts.len().checked_sub(1);
    }

    /// Usage read from a whole answer (replaces what was known).
    pub fn usage(&mut self, u: Option<Usage>) {
        self.rec().usage = u;
    }

    /// Usage read from a stream event (merged into what was known).
    pub fn add_usage(&mut self, u: Usage) {
        self.rec().usage.get_or_insert_with(Usage::default).merge(u);
    }

    /// What translation dropped or changed (never content); each warning once.
    pub fn warn(&mut self, warnings: impl IntoIterator<Item = String>) {
        let r = self.rec();
        for w in warnings {
            if !r.warnings.contains(&w) {
                r.warnings.push(w);
            }
        }
    }

    /// Notes something on the usage record (never content).
    pub fn note(&mut self, stage: &str, note: String) {
        self.rec().annotations.push(Annotation {
            stage: stage.into(),
            note,
        });
    }

    /// What the governance stages left: notes, holds, rate limits and headers.
    pub fn governed(&mut self, effects: Effects) {
        let r = self.rec();
        r.annotations.extend(
            effects
                .notes
                .into_iter()
                .map(|(stage, note)| Annotation { stage, note }),
        );
        if effects.limited_by.is_some() {
            r.quota = effects.limited_by;
        }
        if effects.rule.is_some() {
            r.rule = effects.rule;
        }
        if self.holds.is_empty() {
            self.holds = effects.holds;
        } else {
            self.holds.extend(effects.holds);
        }
        self.rate_limits = effects.rate_limits;
        self.headers.extend(effects.headers);
        self.refused = effects.refused;
        self.capture = effects.capture.map(Box::new);
    }

    /// Whether the request's content may be captured (its answer is wanted).
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// The whole answer (or error body) the caller receives, for the capture.
    pub fn capture_whole(&mut self, body: &bytes::Bytes) {
        if let Some(c) = self.capture.as_mut() {
            c.whole(body.clone());
        }
    }

    /// A streamed answer, assembled, for the capture.
    pub fn capture_stream(&mut self, text: String, tool_calls: Vec<(String, String)>) {
        if let Some(c) = self.capture.as_mut() {
            c.stream(text, tool_calls);
        }
    }

    /// The first byte of the answer went to the client.
    pub fn first_byte(&mut self) {
        let elapsed = self.started.elapsed();
        let r = self.rec();
        if r.ttft.is_none() {
            r.ttft = Some(elapsed);
        }
    }

    /// Notes the router's overhead so far (elapsed time minus time spent waiting on upstream
    /// attempts) and explains the routing decision on the response: `x-router-group`,
    /// `x-router-target` (provider/model, no URL), `x-router-attempts`, `x-router-overhead-ms`;
    /// plus governance's rate-limit headers (in `surface`'s spelling) and router headers.
    pub fn response_headers(&mut self, h: &mut HeaderMap, surface: Dialect) {
        if !self.rate_limits.is_empty() {
            translate::rate_limit_headers(surface, &self.rate_limits, h);
        }
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        let elapsed = self.started.elapsed();
        let recorder = self.recorder.clone();
        let o = self.rec();
        let upstream: Duration = o.attempts.iter().map(|a| a.latency).sum();
        let overhead = elapsed.saturating_sub(upstream);
        o.overhead = Some(overhead);
        let us = overhead.as_micros();
        if let Ok(v) = HeaderValue::try_from(format!("{}.{:03}", us / 1000, us % 1000)) {
            h.insert(crate::header_names::X_ROUTER_OVERHEAD_MS, v);
        }
        if let Some(v) = o
            .group
            .as_deref()
            .and_then(|g| HeaderValue::from_str(g).ok())
        {
            h.insert(crate::header_names::X_ROUTER_GROUP, v);
        }
        if let Some(v) = o
            .served()
            .and_then(|a| recorder.target(a.target).header.clone())
        {
            h.insert(crate::header_names::X_ROUTER_TARGET, v);
        }
        if !o.attempts.is_empty() {
            h.insert(
                crate::header_names::X_ROUTER_ATTEMPTS,
                HeaderValue::from(o.attempts.len()),
            );
        }
    }

    /// Finishes and records the outcome.
    pub fn finish(mut self, http_status: u16, error_kind: Option<&'static str>) {
        let mut r = self.record.take().expect("finished once");
        r.http_status = http_status;
        r.error_kind = error_kind;
        self.close(r);
    }

    /// Settles governance's holds and hands the record over, once.
    fn close(&mut self, mut r: RequestOutcome) {
        r.latency = self.started.elapsed();
        self.recorder.metrics.in_flight.dec();
        let cost_usd = self.recorder.cost(&r);
        let end = Settled {
            usage: r.usage,
            cost_usd,
            http_status: r.http_status,
            refused: self.refused,
        };
        for hold in self.holds.drain(..) {
            hold.settle(&end);
        }
        if let Some(c) = self.capture.take() {
            let failed = r.http_status >= 400 || r.error_kind.is_some();
            if let (true, Some(sink)) = (c.selected(failed), self.recorder.captures()) {
                r.capture_policy = Some(c.policy().clone());
                sink.submit(c, &r.request_id);
            }
        }
        self.recorder.record(r, cost_usd);
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            self.close(r);
        }
    }
}
