//! `POST /v1/chat/completions`.

use super::attempt::{self, Committed, Exchange, Reply};
use super::body::read_body;
use super::sse_tap::{ChatSseTap, StreamLimits};
use crate::error::Error;
use crate::routing::plan_attempts;
use crate::server::{AppState, RequestContext};
use crate::usage::Outcome;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use dialects::Dialect;
use dialects::openai_chat::{decode, encode};
use http::{HeaderMap, HeaderValue};

const SURFACE: Dialect = Dialect::OpenAiChat;

/// Handles a Chat Completions request.
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut outcome = Outcome::start(
        state.recorder.clone(),
        &ctx.request_id,
        SURFACE.as_str(),
        ctx.started,
        ctx.started_at,
    );
    match handle(&state, &ctx, &headers, body, &mut outcome).await {
        Ok(Answer::Whole(mut resp)) => {
            super::annotate(resp.headers_mut(), outcome.get_mut());
            outcome.first_byte();
            outcome.finish(200, None);
            resp
        }
        Ok(Answer::Stream(build)) => build(outcome),
        Err(e) => {
            let kind = e.kind();
            let mut resp = e.into_response(SURFACE);
            super::annotate(resp.headers_mut(), outcome.get_mut());
            outcome.finish(resp.status().as_u16(), Some(kind));
            resp
        }
    }
}

/// A successful answer: whole, or a stream that takes over the outcome.
enum Answer {
    Whole(Response),
    Stream(Box<dyn FnOnce(Outcome) -> Response + Send>),
}

async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: Body,
    outcome: &mut Outcome,
) -> Result<Answer, Error> {
    let caller = crate::server::require_caller(state, headers)?;
    {
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
    let bytes = read_body(headers, body, state.config.server.max_body_bytes).await?;
    let mut inspected = decode::inspect_request(&bytes)?;
    inspected.summary.session_key =
        super::session_key(headers, inspected.summary.session_key.take());
    let summary = &inspected.summary;
    {
        let r = outcome.get_mut();
        r.group = Some(summary.group.clone());
        r.stream = summary.stream;
    }
    let group = state
        .config
        .group(&summary.group)
        .filter(|g| caller.may_use(&g.name))
        .ok_or_else(|| Error::ModelNotFound {
            group: summary.group.clone(),
        })?;
    let plan = plan_attempts(
        &state.config,
        state.routing_state(),
        &group.name,
        summary,
        &mut fastrand::Rng::new(),
    )
    .map_err(|e| Error::NoEligibleTarget {
        group: group.name.clone(),
        reasons: e.reasons.join("; "),
        retry_after: e.cooling,
    })?;
    outcome.get_mut().affinity_hit = plan.affinity_hit;
    let (deadline, budget) = super::deadline(state, group.timeout, ctx, headers);
    let exchange = Exchange {
        request_id: &ctx.request_id,
        parent_id: &state.config.server.name,
        stream: summary.stream,
        deadline,
        budget,
        build_body: |t: &crate::config::TargetConfig| {
            Bytes::from(encode::rewrite_request(&bytes, &inspected, &t.model))
        },
        inspect_whole: |b: &[u8]| decode::response_usage(b).map_err(|_| "the body is not JSON"),
    };
    let Committed {
        provider,
        target,
        head,
        reply,
    } = attempt::run(state, &plan, exchange, outcome).await?;
    if let (true, Some(key)) = (group.session_affinity, summary.session_key.as_deref()) {
        state.affinity.set(&group.name, key, target);
    }
    let content_type = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    match reply {
        Reply::Whole(body) => {
            outcome.get_mut().usage = decode::response_usage(&body).ok().flatten();
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type);
            Ok(Answer::Whole(resp))
        }
        Reply::Stream { first, rest } => {
            let caller_wants_usage = inspected.include_usage;
            let provider_name = state.providers[provider].name.clone();
            let limits = StreamLimits {
                idle: state.providers[provider].read_timeout,
                deadline,
                budget,
            };
            Ok(Answer::Stream(Box::new(move |mut outcome| {
                let mut annotations = http::HeaderMap::new();
                super::annotate(&mut annotations, outcome.get_mut());
                let tap = ChatSseTap::new(
                    first,
                    rest,
                    caller_wants_usage,
                    outcome,
                    provider_name,
                    limits,
                );
                let mut resp = Response::new(Body::new(tap));
                resp.headers_mut().extend(annotations);
                let h = resp.headers_mut();
                h.insert(http::header::CONTENT_TYPE, content_type);
                h.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                resp
            })))
        }
    }
}
