//! `POST /v1/messages/count_tokens`: passed through to the group's first `anthropic` target;
//! otherwise estimated locally with the o200k BPE tokenizer (an estimate of another model
//! family's tokenizer: close, not exact; the response says which via `x-router-token-count`).

use super::body::read_body;
use crate::error::Error;
use crate::routing::plan_attempts;
use crate::server::{AppState, RequestContext};
use crate::upstream::{AttemptHeaders, Endpoint};
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use dialects::Dialect;
use dialects::canonical::{Needs, Part, Request, RequestSummary};
use dialects::translate;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use std::sync::OnceLock;

const SURFACE: Dialect = Dialect::AnthropicMessages;

/// Tokens counted per image when estimating locally (Anthropic: about width*height/750; this is
/// a 1092x1092 image, the size Anthropic scales large images to).
const IMAGE_TOKENS: usize = 1600;

/// Handles a token count request.
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(&state, &ctx, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(SURFACE),
    }
}

async fn run(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let caller = crate::server::require_caller(state, headers)?;
    let bytes = read_body(headers, body, state.config.server.max_body_bytes).await?;
    let (req, _) = translate::decode_request(SURFACE, &bytes)?;
    let group = state
        .config
        .group(&req.model)
        .filter(|g| caller.may_use(&g.name))
        .ok_or_else(|| Error::ModelNotFound {
            group: req.model.clone(),
        })?;
    let summary = RequestSummary {
        group: group.name.clone(),
        stream: false,
        needs: Needs {
            tools: !req.tools.is_empty(),
            images: req
                .messages
                .iter()
                .flat_map(|m| &m.parts)
                .any(|p| matches!(p, Part::Image(_))),
            json_schema: false,
        },
        estimated_prompt_tokens: 0,
        max_output_tokens: None,
        session_key: None,
    };
    let plan = plan_attempts(
        &state.config,
        state.routing_state(),
        &group.name,
        &summary,
        &mut fastrand::Rng::new(),
    );
    let upstream = plan.ok().and_then(|p| {
        p.targets
            .into_iter()
            .map(|t| &state.config.groups[t.group].targets[t.target])
            .find(|t| {
                let p = &state.providers[t.provider];
                p.dialect() == SURFACE && p.has(Endpoint::CountTokens)
            })
    });
    if let Some(t) = upstream {
        match forward(state, ctx, headers, &bytes, t).await {
            Some(resp) => return Ok(resp),
            None => {
                tracing::warn!(provider = %state.providers[t.provider].name, "count_tokens upstream failed; estimating locally")
            }
        }
    }
    let n = tokio::task::spawn_blocking(move || estimate(&req))
        .await
        .map_err(|_| Error::Internal)?;
    let mut resp = Response::new(Body::from(
        serde_json::json!({"input_tokens": n}).to_string(),
    ));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("x-router-token-count", HeaderValue::from_static("estimate"));
    Ok(resp)
}

/// Asks an `anthropic` target; `None` when it fails (the caller then gets an estimate).
async fn forward(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    bytes: &[u8],
    t: &crate::config::TargetConfig,
) -> Option<Response> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v["model"] = serde_json::Value::String(t.model.clone());
    let body = Bytes::from(serde_json::to_vec(&v).ok()?);
    let forward: Vec<_> = ["anthropic-version", "anthropic-beta"]
        .iter()
        .filter_map(|n| Some((http::HeaderName::from_static(n), headers.get(*n)?.clone())))
        .collect();
    let meta = AttemptHeaders {
        request_id: &ctx.request_id,
        stream: false,
        timeout_ms: 30_000,
        parent_id: &state.config.server.name,
        forward: &forward,
    };
    let provider = &state.providers[t.provider];
    let resp = tokio::time::timeout(
        provider.read_timeout,
        provider.send_to(Endpoint::CountTokens, body, meta),
    )
    .await
    .ok()?
    .ok()?;
    let body = tokio::time::timeout(provider.read_timeout, resp.into_body().collect())
        .await
        .ok()?
        .ok()?
        .to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()?
        .get("input_tokens")?;
    let mut out = Response::new(Body::from(body));
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out.headers_mut()
        .insert("x-router-token-count", HeaderValue::from_static("upstream"));
    Some(out)
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
