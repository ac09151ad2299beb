//! One model request on any surface: authenticate, inspect the body with the surface dialect's
//! decoder, check the group, plan, run the attempts, and answer — passing same-dialect traffic
//! through untouched but for `model`, translating through the canonical model otherwise.

use super::attempt::{self, Committed, Exchange, Reply, Whole};
use super::body::read_body;
use super::stream_body::{Mode, SseBody, StreamLimits};
use crate::error::Error;
use crate::routing::plan_attempts;
use crate::server::{AppState, RequestContext};
use crate::usage::Outcome;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use dialects::Dialect;
use dialects::canonical::{EncodeOptions, Request};
use dialects::openai_responses::ToolShapes;
use dialects::passthrough::{self, Inspected};
use dialects::translate::{self, AnswerContext, StreamDecoder, StreamEncoder};
use http::{HeaderMap, HeaderValue};
use std::time::{SystemTime, UNIX_EPOCH};

/// Caller headers passed on to an upstream of the caller's own dialect.
const FORWARDED: &[&str] = &["anthropic-version", "anthropic-beta"];

/// Handles a generation request on `surface`.
pub async fn handle(
    state: AppState,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
    surface: Dialect,
) -> Response {
    let mut outcome = Outcome::start(
        state.recorder.clone(),
        &ctx.request_id,
        surface.as_str(),
        ctx.started,
        ctx.started_at,
    );
    outcome.get_mut().client = crate::usage::detect_client(&headers);
    match run(&state, &ctx, &headers, body, surface, &mut outcome).await {
        Ok(Answer::Whole(mut resp)) => {
            super::annotate(&state, resp.headers_mut(), &mut outcome);
            outcome.first_byte();
            outcome.finish(200, None);
            resp
        }
        Ok(Answer::Stream(build)) => build(outcome),
        Err(e) => {
            let kind = e.kind();
            let mut resp = e.into_response(surface);
            super::annotate(&state, resp.headers_mut(), &mut outcome);
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The translation state of one request: the canonical form, decoded on first need.
struct Translation<'a> {
    surface: Dialect,
    body: &'a [u8],
    request: Option<Request>,
    warnings: Vec<String>,
    structured_tool: Option<String>,
}

impl Translation<'_> {
    /// The upstream body for target `t` speaking `upstream`.
    fn build(
        &mut self,
        inspected: &Inspected,
        t: &crate::config::TargetConfig,
        upstream: Dialect,
    ) -> Result<Bytes, Error> {
        self.structured_tool = None;
        if upstream == self.surface {
            let clamp = match (inspected.summary.max_output_tokens, t.max_output_tokens) {
                (Some(asked), Some(cap)) if asked > cap => {
                    self.warn(format!("max tokens {asked} clamped to the target's {cap}"));
                    Some(cap)
                }
                _ => None,
            };
            return Ok(Bytes::from(passthrough::rewrite_request(
                self.body, inspected, &t.model, clamp,
            )));
        }
        if self.request.is_none() {
            let (req, w) = translate::decode_request(self.surface, self.body)?;
            self.warnings.extend(w.into_iter().map(|w| w.0));
            self.request = Some(req);
        }
        let req = self.request.as_ref().expect("decoded above");
        let opts = EncodeOptions {
            model: &t.model,
            reasoning: t.capabilities.reasoning,
            max_output_tokens: t.max_output_tokens,
        };
        let enc = translate::encode_request(upstream, req, &opts);
        for w in enc.warnings {
            self.warn(w.0);
        }
        self.structured_tool = enc.structured_tool;
        Ok(Bytes::from(enc.body))
    }

    /// What encoding the answer for the caller needs.
    fn answer_context(
        &self,
        summary: &dialects::canonical::RequestSummary,
        inspected: &Inspected,
    ) -> AnswerContext {
        AnswerContext {
            model: summary.group.clone(),
            created: now_secs(),
            include_usage: inspected.include_usage,
            shapes: self
                .request
                .as_ref()
                .map(ToolShapes::of)
                .unwrap_or_default(),
        }
    }

    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

async fn run(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: Body,
    surface: Dialect,
    outcome: &mut Outcome,
) -> Result<Answer, Error> {
    let caller = crate::server::require_caller(state, headers)?;
    super::record_caller(outcome, &caller, headers);
    let bytes = read_body(headers, body, state.config.server.max_body_bytes).await?;
    let mut inspected = passthrough::inspect_request(surface, &bytes)?;
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
    let forward = FORWARDED
        .iter()
        .filter_map(|name| {
            Some((
                http::HeaderName::from_static(name),
                headers.get(*name)?.clone(),
            ))
        })
        .collect();
    let mut tr = Translation {
        surface,
        body: &bytes,
        request: None,
        warnings: Vec::new(),
        structured_tool: None,
    };
    let exchange = Exchange {
        surface,
        forward,
        request_id: &ctx.request_id,
        parent_id: &state.config.server.name,
        stream: summary.stream,
        deadline,
        budget,
        build_body: |t: &crate::config::TargetConfig, upstream: Dialect| {
            tr.build(&inspected, t, upstream)
        },
        inspect_whole: |d: Dialect, b: &[u8]| {
            if d == surface {
                passthrough::response_usage(d, b)
                    .map(Whole::Usage)
                    .map_err(|_| "the body is not valid JSON")
            } else {
                translate::decode_response(d, b)
                    .map(|r| Whole::Decoded(Box::new(r)))
                    .map_err(|_| "the body does not match the provider's dialect")
            }
        },
    };
    let result = attempt::run(state, &plan, exchange, outcome).await;
    outcome.get_mut().warnings = std::mem::take(&mut tr.warnings);
    let Committed {
        provider,
        target,
        dialect: upstream,
        head,
        reply,
    } = result?;
    if let (true, Some(key)) = (group.session_affinity, summary.session_key.as_deref()) {
        state.affinity.set(&group.name, key, target);
    }
    let same = upstream == surface;
    match reply {
        Reply::Whole { body, checked } => {
            let body = match checked {
                Whole::Usage(usage) => {
                    outcome.get_mut().usage = usage;
                    body
                }
                Whole::Decoded(resp) => {
                    let resp = match tr.structured_tool.as_deref() {
                        Some(tool) => resp.answer_structured(tool),
                        None => *resp,
                    };
                    outcome.get_mut().usage = Some(resp.usage);
                    Bytes::from(translate::encode_response(
                        surface,
                        &resp,
                        &tr.answer_context(summary, &inspected),
                    ))
                }
            };
            let content_type = head
                .headers
                .get(http::header::CONTENT_TYPE)
                .filter(|_| same)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json"));
            let mut resp = Response::new(Body::from(body));
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type);
            Ok(Answer::Whole(resp))
        }
        Reply::Stream { first, rest } => {
            let mode = if same {
                Mode::Passthrough {
                    dialect: surface,
                    drop_forced_usage: !inspected.include_usage,
                }
            } else {
                Mode::translate(
                    StreamDecoder::new(upstream, tr.structured_tool.take()),
                    StreamEncoder::new(surface, tr.answer_context(summary, &inspected)),
                )
            };
            let limits = StreamLimits {
                idle: state.providers[provider].read_timeout,
                deadline,
                budget,
            };
            let provider_name = state.providers[provider].name.clone();
            let surface_name = surface;
            let state = state.clone();
            Ok(Answer::Stream(Box::new(move |mut outcome| {
                let mut annotations = HeaderMap::new();
                super::annotate(&state, &mut annotations, &mut outcome);
                let body = SseBody::new(
                    first,
                    rest,
                    mode,
                    surface_name,
                    outcome,
                    provider_name,
                    limits,
                );
                let mut resp = Response::new(Body::new(body));
                resp.headers_mut().extend(annotations);
                let h = resp.headers_mut();
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                h.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                resp
            })))
        }
    }
}
