//! The proxy path: read and inspect the request, authorise the group, plan attempts, run them,
//! and answer — passing same-dialect traffic through untouched but for `model`.

mod attempt;
mod body;
mod count_tokens;
mod exchange;
mod stream_body;

pub use count_tokens::count_tokens;

use crate::auth::Caller;
use crate::server::{AppState, RequestContext};
use crate::usage::Outcome;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use dialects::Dialect;
use http::{HeaderMap, HeaderValue};
use std::time::{Duration, Instant};

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    exchange::handle(state, ctx, headers, body, Dialect::OpenAiChat).await
}

/// `POST /v1/messages` (a `?beta=true` query is accepted and ignored).
pub async fn messages(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    exchange::handle(state, ctx, headers, body, Dialect::AnthropicMessages).await
}

/// `POST /v1/responses`.
pub async fn responses(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    exchange::handle(state, ctx, headers, body, Dialect::OpenAiResponses).await
}

/// `GET /v1/responses`: a WebSocket upgrade (Codex's optional transport) gets a fast 426 so
/// the client falls back to HTTP streaming; anything else is 405.
pub async fn responses_upgrade(headers: HeaderMap) -> Response {
    let upgrade = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let err = if upgrade {
        crate::Error::UpgradeRequired
    } else {
        crate::Error::MethodNotAllowed {
            method: "GET".into(),
            path: "/v1/responses".into(),
        }
    };
    err.into_response(Dialect::OpenAiResponses)
}

/// Records the caller on the outcome, and the parent router's id when there is one.
fn record_caller(outcome: &mut Outcome, caller: &Caller, headers: &HeaderMap) {
    let r = outcome.get_mut();
    r.caller = Some(caller.name.clone());
    r.project = caller.project.clone();
    r.team = caller.team.clone();
    r.environment = caller.environment.clone();
    r.parent_id = headers
        .get("x-router-parent-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
}

/// The request's budget: the group's (or the server's) timeout, lowered by the caller's
/// `x-router-timeout-ms`, never raised.
fn deadline(
    state: &AppState,
    group_timeout: Option<Duration>,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> (Instant, Duration) {
    let mut budget = group_timeout.unwrap_or(state.config.server.request_timeout);
    if let Some(ms) = headers
        .get("x-router-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        budget = budget.min(Duration::from_millis(ms));
    }
    (ctx.started + budget, budget)
}

/// Explains the routing decision on the response: `x-router-group`, `x-router-target`
/// (provider/model, no URL), `x-router-attempts`, and `x-router-overhead-ms` (time spent in the
/// router so far: elapsed time minus time spent waiting on upstream attempts), which is also
/// kept on the outcome for the overhead histogram.
fn annotate(state: &AppState, h: &mut HeaderMap, outcome: &mut Outcome) {
    let elapsed = outcome.elapsed();
    let o = outcome.get_mut();
    let upstream: std::time::Duration = o.attempts.iter().map(|a| a.latency).sum();
    let overhead = elapsed.saturating_sub(upstream);
    o.overhead = Some(overhead);
    let us = overhead.as_micros();
    if let Ok(v) = HeaderValue::try_from(format!("{}.{:03}", us / 1000, us % 1000)) {
        h.insert("x-router-overhead-ms", v);
    }
    if let Some(v) = o
        .group
        .as_deref()
        .and_then(|g| HeaderValue::from_str(g).ok())
    {
        h.insert("x-router-group", v);
    }
    if let Some(v) = o
        .served()
        .and_then(|a| state.recorder.target(a.target).header.clone())
    {
        h.insert("x-router-target", v);
    }
    if !o.attempts.is_empty() {
        h.insert("x-router-attempts", HeaderValue::from(o.attempts.len()));
    }
}

/// The session key for affinity: `x-session-id`, else Codex's `session-id` or Claude Code's
/// `x-claude-code-session-id`, else what the body carries (`prompt_cache_key`, the session in
/// `metadata.user_id`).
fn session_key(headers: &HeaderMap, from_body: Option<String>) -> Option<String> {
    ["x-session-id", "session-id", "x-claude-code-session-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or(from_body)
}
