//! Stage `attempt`: try the planned targets in order until one answers usably, falling back on
//! retryable failures. Nothing has reached the client while this runs, so every failure here
//! can still move on to the next target. Every attempt is noted on the outcome and in target
//! health.

use super::RequestContext;
use super::admit::Admitted;
use super::conversion::{Checked, Conversion};
use crate::config::TargetConfig;
use crate::error::Error;
use crate::outcome::Attempt;
use crate::routing::AttemptPlan;
use crate::upstream::{AttemptHeaders, Provider, UpstreamError};
use bytes::Bytes;
use dialects::Dialect;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// What a committed attempt gives the surface to answer with.
#[derive(Debug)]
pub(super) enum Reply {
    /// A whole (non-stream) body, already checked, and what checking it found.
    Whole {
        /// The body.
        body: Bytes,
        /// Its usage or decoded answer.
        checked: Checked,
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
pub(super) struct Committed {
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

/// What every attempt of one request sends besides the body.
struct Sending<'a> {
    surface: Dialect,
    forward: &'a [(http::HeaderName, http::HeaderValue)],
    extra: &'a [(http::HeaderName, http::HeaderValue)],
    request_id: &'a str,
    parent_id: &'a str,
    stream: bool,
    deadline: Instant,
    hop_margin: Duration,
    /// The request's trace context, when telemetry is on.
    trace: Option<crate::telemetry::Propagation>,
}

/// What to do after an attempt failed.
enum Next {
    /// Try the same target again (if retries are left).
    Retry,
    /// Move on to the next target.
    NextTarget,
}

/// Runs the plan: each target in order, retrying the same target `retries_per_target` times
/// with jittered backoff, at most `plan.max_attempts` attempts in all, within the deadline.
/// Notes every attempt on the outcome and in target health.
pub(super) async fn run(
    cx: &mut RequestContext,
    plan: &AttemptPlan,
    admitted: &mut Admitted,
    conv: &mut Conversion,
) -> Result<Committed, Error> {
    let state = cx.state.clone();
    let routing = &state.config.routing;
    let request_id = cx.arrival.request_id.clone();
    // Owned copies: the attempts borrow these while the admitted request lends its body.
    let forward = admitted.forward.clone();
    let extra = admitted.upstream_headers.clone();
    let ex = Sending {
        surface: cx.surface,
        forward: &forward,
        extra: &extra,
        request_id: &request_id,
        parent_id: &state.config.server.name,
        stream: admitted.summary().stream,
        deadline: admitted.deadline,
        hop_margin: routing.hop_margin,
        trace: cx
            .outcome
            .get()
            .trace
            .as_deref()
            .map(crate::telemetry::Propagation::of),
    };
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
                let pause = backoff(routing.retry_backoff, retry);
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
            let body = conv.upstream_body(admitted, target, provider.dialect())?;
            let span_id = ex
                .trace
                .as_ref()
                .map_or(0, |_| crate::telemetry::new_span_id());
            let result = attempt(provider, body, &ex, conv, now, span_id).await;
            note(cx, target, &result, now, span_id);
            match result {
                Ok((head, reply)) => {
                    return Ok(Committed {
                        provider: target.provider,
                        target: target.id,
                        dialect: provider.dialect(),
                        head,
                        reply,
                    });
                }
                Err(e) => {
                    let (next, e) = after_failure(cx, target, e)?;
                    last = Some(e);
                    if let Next::NextTarget = next {
                        break;
                    }
                }
            }
        }
    }
    Err(exhausted(last, ex.deadline, admitted.budget))
}

/// Full-jitter exponential backoff before retry number `retry` (1-based) at one target.
fn backoff(base: Duration, retry: u32) -> Duration {
    let cap = base.saturating_mul(1 << (retry - 1).min(16));
    cap.mul_f64(fastrand::f64())
}

/// Notes one attempt on the outcome and in target health.
fn note(
    cx: &mut RequestContext,
    target: &TargetConfig,
    result: &Result<(http::response::Parts, Reply), UpstreamError>,
    started: Instant,
    span_id: u64,
) {
    let latency = started.elapsed();
    let names = cx.state.recorder.target(target.id);
    cx.outcome.attempt(Attempt {
        target: target.id,
        provider: names.provider.clone(),
        model: names.model.clone(),
        outcome: result.as_ref().map_or_else(UpstreamError::kind, |_| "ok"),
        status: match result {
            Ok((head, _)) => Some(head.status.as_u16()),
            Err(e) => e.status(),
        },
        latency,
        offset: started.saturating_duration_since(cx.arrival.started),
        span_id,
    });
    match result {
        Ok(_) => {
            cx.state.health.record_success(target.id, latency);
            cx.outcome.served_by_last();
        }
        Err(e) => cx.state.health.record_failure(target.id, e),
    }
}

/// Logs a failed attempt and decides what follows: a non-retryable failure ends the request
/// (the upstream's own answer goes back); a target that went into cooldown on a status or
/// credential failure is not retried.
fn after_failure(
    cx: &RequestContext,
    target: &TargetConfig,
    e: UpstreamError,
) -> Result<(Next, UpstreamError), Error> {
    tracing::warn!(
        provider = %cx.state.providers[target.provider].name,
        model = %target.model,
        error = e.kind(),
        status = e.status(),
        retryable = e.retryable(),
        "attempt failed"
    );
    if !e.retryable() {
        return Err(Error::Upstream(e));
    }
    let pointless = matches!(
        e,
        UpstreamError::CredentialRejected { .. } | UpstreamError::Status { .. }
    ) && cx.state.health.cooling(target.id).is_some();
    Ok((
        if pointless {
            Next::NextTarget
        } else {
            Next::Retry
        },
        e,
    ))
}

/// The error once no attempt is left: the deadline when it ran out (or nothing was tried),
/// else the last attempt's failure.
fn exhausted(last: Option<UpstreamError>, deadline: Instant, budget: Duration) -> Error {
    let budget_ms = budget.as_millis() as u64;
    match last {
        Some(UpstreamError::Timeout { .. }) | None if Instant::now() >= deadline => {
            Error::DeadlineExceeded { budget_ms }
        }
        Some(e) => Error::Upstream(e),
        None => Error::DeadlineExceeded { budget_ms },
    }
}

/// One attempt: send, then read what must be known before committing (the whole body, or the
/// first chunk of a stream), within the smaller of the budget left and the read timeout.
async fn attempt(
    provider: &Provider,
    body: Bytes,
    ex: &Sending<'_>,
    conv: &Conversion,
    now: Instant,
    span_id: u64,
) -> Result<(http::response::Parts, Reply), UpstreamError> {
    let left = ex.deadline.saturating_duration_since(now);
    let wait = left.min(provider.read_timeout);
    let headers = AttemptHeaders {
        request_id: ex.request_id,
        stream: ex.stream,
        timeout_ms: left.saturating_sub(ex.hop_margin).as_millis().max(1) as u64,
        parent_id: ex.parent_id,
        forward: if provider.dialect() == ex.surface {
            ex.forward
        } else {
            &[]
        },
        extra: ex.extra,
        trace: ex.trace.as_ref().map(|t| t.headers(span_id)),
    };
    let until = tokio::time::Instant::from_std(now + wait);
    let resp = tokio::time::timeout_at(until, provider.send(body, headers))
        .await
        .map_err(|_| timed_out(provider, wait))??;
    let (head, incoming) = resp.into_parts();
    let reply = if ex.stream {
        first_chunk(provider, &head, incoming, until, wait).await?
    } else {
        whole(provider, incoming, conv, until, wait).await?
    };
    Ok((head, reply))
}

fn timed_out(provider: &Provider, waited: Duration) -> UpstreamError {
    UpstreamError::Timeout {
        provider: provider.name.clone(),
        waited_ms: waited.as_millis() as u64,
    }
}

fn broken(provider: &Provider, reason: String) -> UpstreamError {
    UpstreamError::Broken {
        provider: provider.name.clone(),
        reason,
    }
}

/// Reads a whole body (at most `max_response_bytes`) and checks it: its usage when it passes
/// through, its decoded form when it is translated.
async fn whole(
    provider: &Provider,
    incoming: Incoming,
    conv: &Conversion,
    until: tokio::time::Instant,
    wait: Duration,
) -> Result<Reply, UpstreamError> {
    let limited = http_body_util::Limited::new(incoming, provider.max_response_bytes);
    let body = tokio::time::timeout_at(until, limited.collect())
        .await
        .map_err(|_| timed_out(provider, wait))?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                broken(
                    provider,
                    format!(
                        "the response body is larger than max_response_bytes ({})",
                        provider.max_response_bytes
                    ),
                )
            } else {
                broken(provider, e.to_string())
            }
        })?
        .to_bytes();
    let checked = conv
        .check_whole(provider.dialect(), &body)
        .map_err(|reason| UpstreamError::InvalidResponse {
            provider: provider.name.clone(),
            reason,
        })?;
    Ok(Reply::Whole { body, checked })
}

/// Waits for a stream's first data (what must arrive before the attempt commits).
async fn first_chunk(
    provider: &Provider,
    head: &http::response::Parts,
    mut incoming: Incoming,
    until: tokio::time::Instant,
    wait: Duration,
) -> Result<Reply, UpstreamError> {
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
            .map_err(|_| timed_out(provider, wait))?;
        match frame {
            Some(Ok(f)) => {
                if let Ok(first) = f.into_data() {
                    if !first.is_empty() {
                        return Ok(Reply::Stream {
                            first,
                            rest: incoming,
                        });
                    }
                }
            }
            Some(Err(e)) => return Err(broken(provider, e.to_string())),
            None => return Err(broken(provider, "the stream ended before any data".into())),
        }
    }
}
