//! The request pipeline. One [`RequestContext`] flows through the stages, each a module, in
//! request order:
//!
//! ```text
//! admit    request id (set on arrival), authenticate, media type and encoding, body within
//!          the limit, inspect in the caller's dialect, resolve the group, deadline
//! govern   the governance stages that apply to this caller and group, in order; each may
//!          allow, deny (dialect-neutral), rewrite the body or canonical request, annotate
//! plan     eligible targets -> ordered attempt plan
//! attempt  upstream attempts with retry and fallback until one answers usably
//! respond  whole body or stream (passthrough tap, or decode -> canonical -> encode)
//! record   the outcome, owned by the context and recorded once when the response ends
//! ```
//!
//! `count_tokens` is the same `admit` and `govern`, then its own forwarding or local estimate.

mod admit;
mod attempt;
mod conversion;
mod count_tokens;
mod govern;
mod plan;
mod record;
mod respond;
mod stream_body;

pub use admit::Admitted;
pub use count_tokens::count_tokens;
pub use record::Outcome;

use crate::auth::Role;
use crate::error::Error;
use crate::policy::Purpose;
use crate::reload::Current;
use crate::state::AppState;
use attempt::Committed;
use axum::Extension;
use axum::body::Body;
use axum::response::Response;
use conversion::Conversion;
use dialects::Dialect;
use http::HeaderMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// When and as what a request arrived; set by the server before any stage runs.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The request id (the caller's if valid, else a new UUIDv7).
    pub request_id: Arc<str>,
    /// Arrival time, for latencies.
    pub started: Instant,
    /// Arrival wall-clock time, for records.
    pub started_at: SystemTime,
}

/// One request on its way through the stages: the shared state it started with, its arrival,
/// its surface, and its outcome (the one owner of the record).
#[derive(Debug)]
pub struct RequestContext {
    /// The shared state (config, providers, health, recorder) the request started with.
    pub state: AppState,
    /// When and as what it arrived.
    pub arrival: Arrival,
    /// The caller's dialect.
    pub surface: Dialect,
    /// The outcome being recorded.
    pub outcome: Outcome,
}

impl RequestContext {
    /// The context of a request on `surface`; `endpoint` names it in records and metrics.
    fn new(
        state: AppState,
        arrival: Arrival,
        surface: Dialect,
        endpoint: &'static str,
        headers: &HeaderMap,
    ) -> Self {
        let client = crate::usage::detect_client(headers);
        let mut outcome = Outcome::start(state.recorder.clone(), &arrival, endpoint, client);
        if let Some(t) = state.recorder.tracer() {
            outcome.trace(crate::telemetry::start(headers, t.sampling_ratio));
        }
        RequestContext {
            state,
            arrival,
            surface,
            outcome,
        }
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    Current(state): Current,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, arrival, headers, body, Dialect::OpenAiChat).await
}

/// `POST /v1/messages` (a `?beta=true` query is accepted and ignored).
pub async fn messages(
    Current(state): Current,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, arrival, headers, body, Dialect::AnthropicMessages).await
}

/// `POST /v1/responses`.
pub async fn responses(
    Current(state): Current,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, arrival, headers, body, Dialect::OpenAiResponses).await
}

/// `GET /v1/responses`: after authentication, a WebSocket upgrade (Codex's optional transport)
/// gets a fast 426 so the client falls back to HTTP streaming; anything else is 405.
pub async fn responses_upgrade(Current(state): Current, headers: HeaderMap) -> Response {
    let surface = Dialect::OpenAiResponses;
    if let Err(e) = state.auth.require(&headers, &[Role::Caller]) {
        return e.into_response(surface);
    }
    let upgrade = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let err = if upgrade {
        Error::UpgradeRequired
    } else {
        Error::MethodNotAllowed {
            method: "GET".into(),
            path: "/v1/responses".into(),
        }
    };
    err.into_response(surface)
}

/// Runs a generation request on `surface` through the stages.
async fn handle(
    state: AppState,
    arrival: Arrival,
    headers: HeaderMap,
    body: Body,
    surface: Dialect,
) -> Response {
    let mut cx = RequestContext::new(state, arrival, surface, surface.as_str(), &headers);
    match generate(&mut cx, &headers, body).await {
        Ok((admitted, conv, committed)) => respond::answer(cx, admitted, conv, committed),
        Err(e) => respond::refuse(cx, e),
    }
}

/// `admit` -> `govern` -> `plan` -> `attempt`.
async fn generate(
    cx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Admitted, Conversion, Committed), Error> {
    let mut admitted = admit::admit(cx, headers, body, Purpose::Generate).await?;
    govern::govern(cx, &mut admitted, headers).await?;
    let plan = plan::plan(cx, &admitted)?;
    let mut conv = Conversion::new(cx.surface);
    let result = attempt::run(cx, &plan, &mut admitted, &mut conv).await;
    cx.outcome.warn(conv.take_warnings());
    let committed = result?;
    let group = &cx.state.config.groups[admitted.group];
    if let (true, Some(key)) = (
        group.session_affinity,
        admitted.summary().session_key.as_deref(),
    ) {
        cx.state.affinity.set(&group.name, key, committed.target);
    }
    Ok((admitted, conv, committed))
}
