//! `POST /v1/messages/count_tokens`: admitted and governed like a generation, then passed
//! through (only `model` rewritten) to the first `anthropic` target of the group's plan that
//! has a count endpoint, within the request's budget; otherwise — no such target, or it fails —
//! estimated locally with the o200k BPE tokenizer (an estimate of another model family's
//! tokenizer: close, not exact; `x-router-token-count` says which). Recorded like any request.

use super::admit::{self, Admitted};
use super::{Arrival, RequestContext, govern, plan, respond};
use crate::error::Error;
use crate::outcome::Attempt;
use crate::policy::Purpose;
use crate::reload::Current;
use crate::upstream::{AttemptHeaders, Endpoint, UpstreamError};
use axum::Extension;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use dialects::Dialect;
use dialects::canonical::{Part, Request};
use dialects::passthrough;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use std::sync::OnceLock;
use std::time::Instant;

const SURFACE: Dialect = Dialect::AnthropicMessages;

/// How count requests are named in records and metrics.
const ENDPOINT: &str = "anthropic_count_tokens";

/// Tokens counted per image when estimating locally (Anthropic: about width*height/750; this is
/// a 1092x1092 image, the size Anthropic scales large images to).
const IMAGE_TOKENS: usize = 1600;

/// Handles a token count request.
pub async fn count_tokens(
    Current(state): Current,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut cx = RequestContext::new(state, arrival, SURFACE, ENDPOINT, &headers);
    match run(&mut cx, &headers, body).await {
        Ok((body, source)) => {
            let mut resp = Response::new(Body::from(body));
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert("x-router-token-count", HeaderValue::from_static(source));
            cx.outcome.response_headers(h, SURFACE);
            cx.outcome.first_byte();
            cx.outcome.finish(200, None);
            resp
        }
        Err(e) => respond::refuse(cx, e),
    }
}

/// The count's body and where it came from (`upstream` or `estimate`).
async fn run(
    cx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, &'static str), Error> {
    let mut admitted = admit::admit(cx, headers, body, Purpose::CountTokens).await?;
    govern::govern(cx, &mut admitted, headers).await?;
    if let Some(body) = forward(cx, &admitted).await {
        return Ok((body, "upstream"));
    }
    let req = admitted.body.canonical()?.clone();
    cx.outcome.warn(admitted.body.take_decode_warnings());
    let n = tokio::task::spawn_blocking(move || estimate(&req))
        .await
        .map_err(|_| Error::Internal)?;
    let body =
        serde_json::to_vec(&serde_json::json!({ "input_tokens": n })).expect("JSON serialises");
    Ok((Bytes::from(body), "estimate"))
}

/// Asks the first planned target whose provider counts tokens in the caller's dialect; `None`
/// when there is none or it fails (the attempt is recorded either way).
async fn forward(cx: &mut RequestContext, admitted: &Admitted) -> Option<Bytes> {
    let state = cx.state.clone();
    let plan = plan::plan(cx, admitted).ok()?;
    let t = plan
        .targets
        .iter()
        .map(|p| &state.config.groups[p.group].targets[p.target])
        .find(|t| {
            let p = &state.providers[t.provider];
            p.dialect() == SURFACE && p.has(Endpoint::CountTokens)
        })?;
    let provider = &state.providers[t.provider];
    let now = Instant::now();
    let left = admitted.deadline.saturating_duration_since(now);
    let body = Bytes::from(passthrough::rewrite_request(
        admitted.body.bytes(),
        admitted.body.inspected(),
        &t.model,
        None,
    ));
    // The attempt's span, when the request is traced.
    let span = cx.outcome.get().trace.as_deref().map(|t| {
        (
            crate::telemetry::Propagation::of(t),
            crate::telemetry::new_span_id(),
        )
    });
    let meta = AttemptHeaders {
        request_id: &cx.arrival.request_id,
        stream: false,
        timeout_ms: left
            .saturating_sub(state.config.routing.hop_margin)
            .as_millis()
            .max(1) as u64,
        parent_id: &state.config.server.name,
        forward: &admitted.forward,
        extra: &admitted.upstream_headers,
        trace: span.as_ref().map(|(p, id)| p.headers(*id)),
    };
    let wait = left.min(provider.read_timeout);
    let result = tokio::time::timeout(wait, async {
        let resp = provider.send_to(Endpoint::CountTokens, body, meta).await?;
        let limited = http_body_util::Limited::new(resp.into_body(), provider.max_response_bytes);
        let body = limited
            .collect()
            .await
            .map_err(|e| UpstreamError::Broken {
                provider: provider.name.clone(),
                reason: e.to_string(),
            })?
            .to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .filter(|v| v["input_tokens"].is_u64())
            .map(|_| body)
            .ok_or(UpstreamError::InvalidResponse {
                provider: provider.name.clone(),
                reason: "the count has no input_tokens",
            })
    })
    .await
    .unwrap_or_else(|_| {
        Err(UpstreamError::Timeout {
            provider: provider.name.clone(),
            waited_ms: wait.as_millis() as u64,
        })
    });
    let names = state.recorder.target(t.id);
    cx.outcome.attempt(Attempt {
        target: t.id,
        provider: names.provider.clone(),
        model: names.model.clone(),
        outcome: result.as_ref().map_or_else(UpstreamError::kind, |_| "ok"),
        status: match &result {
            Ok(_) => Some(200),
            Err(e) => e.status(),
        },
        latency: now.elapsed(),
        offset: now.saturating_duration_since(cx.arrival.started),
        span_id: span.as_ref().map_or(0, |(_, id)| *id),
    });
    match result {
        Ok(body) => {
            cx.outcome.served_by_last();
            Some(body)
        }
        Err(e) => {
            tracing::warn!(provider = %provider.name, error = e.kind(), "count_tokens upstream failed; estimating locally");
            None
        }
    }
}

fn tokenizer() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("the embedded o200k vocabulary loads"))
}

/// Local estimate of a request's input tokens.
fn estimate(req: &Request) -> usize {
    let bpe = tokenizer();
    let count = |s: &str| bpe.encode_ordinary(s).len();
    let mut n = req.system.iter().map(|s| count(s)).sum::<usize>();
    fn parts(p: &[Part], count: &dyn Fn(&str) -> usize) -> usize {
        p.iter()
            .map(|p| match p {
                Part::Text(t) => count(t),
                Part::Image(_) => IMAGE_TOKENS,
                Part::ToolCall {
                    name, arguments, ..
                } => count(name) + count(arguments) + 4,
                Part::ToolResult { content, .. } => parts(content, count) + 4,
                Part::Reasoning { text, .. } => count(text),
            })
            .sum()
    }
    for m in &req.messages {
        n += 4 + parts(&m.parts, &count);
    }
    for t in &req.tools {
        n += count(&t.name)
            + t.description.as_deref().map_or(0, count)
            + count(&t.parameters.to_string())
            + 8;
    }
    n
}
