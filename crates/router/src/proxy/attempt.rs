//! The attempt loop: try the planned targets in order until one answers usably, falling back on
//! retryable failures. Nothing has reached the client while this runs, so every failure here
//! can still move on to the next target.

use crate::config::TargetConfig;
use crate::error::Error;
use crate::routing::AttemptPlan;
use crate::server::AppState;
use crate::upstream::{AttemptHeaders, Provider, UpstreamError};
use crate::usage::{Attempt, Outcome};
use bytes::Bytes;
use dialects::Dialect;
use dialects::canonical::{Response, Usage};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// What checking a whole (non-stream) upstream body found: its usage when it is passed through,
/// or the decoded answer when it will be translated (so it is parsed once either way).
#[derive(Debug)]
pub enum Whole {
    /// Same dialect as the caller: the usage, when the body reports it.
    Usage(Option<Usage>),
    /// Another dialect: the decoded answer.
    Decoded(Box<Response>),
}

/// What a committed attempt gives the surface to answer with.
#[derive(Debug)]
pub enum Reply {
    /// A whole (non-stream) body, already checked, and what checking it found.
    Whole {
        /// The body.
        body: Bytes,
        /// Its usage or decoded answer.
        checked: Whole,
    },
    /// A stream: its first chunk and the rest.
    Stream {
        /// The first data received.
        first: Bytes,
        /// The remaining body.
        rest: Incoming,
    },
}

/// The attempt that will answer the client.
#[derive(Debug)]
pub struct Committed {
    /// Index into `config.providers` of the provider that answered.
    pub provider: usize,
    /// Id of the target that answered.
    pub target: usize,
    /// The dialect the answering provider speaks.
    pub dialect: Dialect,
    /// The upstream response head.
    pub head: http::response::Parts,
    /// The body.
    pub reply: Reply,
}

/// What one request needs from the loop.
pub struct Exchange<'a, B, W>
where
    B: FnMut(&TargetConfig, Dialect) -> Result<Bytes, Error>,
    W: Fn(Dialect, &[u8]) -> Result<Whole, &'static str>,
{
    /// The caller's dialect.
    pub surface: Dialect,
    /// Caller headers passed on to upstreams of the caller's own dialect.
    pub forward: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The request id sent upstream.
    pub request_id: &'a str,
    /// This router's name, sent upstream as the parent id.
    pub parent_id: &'a str,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// When the budget runs out.
    pub deadline: Instant,
    /// The whole budget, for messages.
    pub budget: Duration,
    /// Builds the upstream body for a target speaking a dialect.
    pub build_body: B,
    /// Checks a whole (non-stream) upstream body of a dialect: reads its usage, or decodes it.
    pub inspect_whole: W,
}

/// Runs the plan: each target in order, retrying the same target `retries_per_target` times
/// with jittered backoff, at most `plan.max_attempts` attempts in all, within the deadline.
/// Records every attempt on `outcome` and in target health.
pub async fn run<B, W>(
    state: &AppState,
    plan: &AttemptPlan,
    mut ex: Exchange<'_, B, W>,
    outcome: &mut Outcome,
) -> Result<Committed, Error>
where
    B: FnMut(&TargetConfig, Dialect) -> Result<Bytes, Error>,
    W: Fn(Dialect, &[u8]) -> Result<Whole, &'static str>,
{
    let routing = &state.config.routing;
    let mut last: Option<UpstreamError> = None;
    let mut made = 0u32;
    'targets: for planned in &plan.targets {
        let target = &state.config.groups[planned.group].targets[planned.target];
        let provider = &state.providers[target.provider];
        for retry in 0..=routing.retries_per_target {
            if made >= plan.max_attempts {
                break 'targets;
            }
            if retry > 0 {
                if state.health.cooling(target.id).is_some() {
                    break;
                }
                let cap = routing
                    .retry_backoff
                    .saturating_mul(1 << (retry - 1).min(16));
                let pause = cap.mul_f64(fastrand::f64());
                if Instant::now() + pause >= ex.deadline {
                    break 'targets;
                }
                tokio::time::sleep(pause).await;
            }
            let now = Instant::now();
            if now >= ex.deadline {
                break 'targets;
            }
            made += 1;
            let body = (ex.build_body)(target, provider.dialect())?;
            let result = attempt(provider, body, &ex, now, routing.hop_margin).await;
            let latency = now.elapsed();
            let names = state.recorder.target(target.id);
            let r = outcome.get_mut();
            r.attempts.push(Attempt {
                target: target.id,
                provider: names.provider.clone(),
                model: names.model.clone(),
                outcome: result.as_ref().map_or_else(UpstreamError::kind, |_| "ok"),
                status: match &result {
                    Ok((head, _)) => Some(head.status.as_u16()),
                    Err(e) => e.status(),
                },
                latency,
            });
            match result {
                Ok((head, reply)) => {
                    state.health.record_success(target.id, latency);
                    r.served_by = Some(r.attempts.len() - 1);
                    return Ok(Committed {
                        provider: target.provider,
                        target: target.id,
                        dialect: provider.dialect(),
                        head,
                        reply,
                    });
                }
                Err(e) => {
                    state.health.record_failure(target.id, &e);
                    tracing::warn!(
                        provider = %provider.name,
                        model = %target.model,
                        error = e.kind(),
                        status = e.status(),
                        retryable = e.retryable(),
                        "attempt failed"
                    );
                    if !e.retryable() {
                        return Err(Error::Upstream(e));
                    }
                    let same_target_pointless = matches!(
                        e,
                        UpstreamError::CredentialRejected { .. } | UpstreamError::Status { .. }
                    ) && state.health.cooling(target.id).is_some();
                    last = Some(e);
                    if same_target_pointless {
                        break;
                    }
                }
            }
        }
    }
    let budget_ms = ex.budget.as_millis() as u64;
    match last {
        Some(UpstreamError::Timeout { .. }) | None if Instant::now() >= ex.deadline => {
            Err(Error::DeadlineExceeded { budget_ms })
        }
        Some(e) => Err(Error::Upstream(e)),
        None => Err(Error::DeadlineExceeded { budget_ms }),
    }
}

/// One attempt: send, then read what must be known before committing (the whole body, or the
/// first chunk of a stream), within the smaller of the budget left and the read timeout.
async fn attempt<B, W>(
    provider: &Provider,
    body: Bytes,
    ex: &Exchange<'_, B, W>,
    now: Instant,
    hop_margin: Duration,
) -> Result<(http::response::Parts, Reply), UpstreamError>
where
    B: FnMut(&TargetConfig, Dialect) -> Result<Bytes, Error>,
    W: Fn(Dialect, &[u8]) -> Result<Whole, &'static str>,
{
    let wait = ex
        .deadline
        .saturating_duration_since(now)
        .min(provider.read_timeout);
    let timeout = || UpstreamError::Timeout {
        provider: provider.name.clone(),
        waited_ms: wait.as_millis() as u64,
    };
    let left = ex.deadline.saturating_duration_since(now);
    let headers = AttemptHeaders {
        request_id: ex.request_id,
        stream: ex.stream,
        timeout_ms: left.saturating_sub(hop_margin).as_millis().max(1) as u64,
        parent_id: ex.parent_id,
        forward: if provider.dialect() == ex.surface {
            &ex.forward
        } else {
            &[]
        },
    };
    let until = tokio::time::Instant::from_std(now + wait);
    let resp = tokio::time::timeout_at(until, provider.send(body, headers))
        .await
        .map_err(|_| timeout())??;
    let (head, mut incoming) = resp.into_parts();
    let broken = |reason: String| UpstreamError::Broken {
        provider: provider.name.clone(),
        reason,
    };
    if !ex.stream {
        let collected = tokio::time::timeout_at(until, incoming.collect())
            .await
            .map_err(|_| timeout())?
            .map_err(|e| broken(e.to_string()))?
            .to_bytes();
        let checked = (ex.inspect_whole)(provider.dialect(), &collected).map_err(|reason| {
            UpstreamError::InvalidResponse {
                provider: provider.name.clone(),
                reason,
            }
        })?;
        return Ok((
            head,
            Reply::Whole {
                body: collected,
                checked,
            },
        ));
    }
    let is_sse = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err(UpstreamError::InvalidResponse {
            provider: provider.name.clone(),
            reason: "a stream was asked for but the response is not text/event-stream",
        });
    }
    loop {
        let frame = tokio::time::timeout_at(until, incoming.frame())
            .await
            .map_err(|_| timeout())?;
        match frame {
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    if !data.is_empty() {
                        return Ok((
                            head,
                            Reply::Stream {
                                first: data,
                                rest: incoming,
                            },
                        ));
                    }
                }
            }
            Some(Err(e)) => return Err(broken(e.to_string())),
            None => return Err(broken("the stream ended before any data".into())),
        }
    }
}
