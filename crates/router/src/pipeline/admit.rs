//! Stage `admit`: everything known before any policy or routing — the caller (authenticated
//! first, so an unauthenticated client never makes the router read or parse its body), the
//! body (a JSON media type, no content encoding, within `server.max_body_bytes`), its
//! inspection in the caller's dialect, the group (existing and allowed), and the time budget.

use super::RequestContext;
use crate::auth::{Caller, Role};
use crate::error::Error;
use crate::policy::{Purpose, RequestBody};
use axum::body::Body;
use bytes::Bytes;
use dialects::canonical::RequestSummary;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An admitted request: who asks, for which group, with which body, by when.
#[derive(Debug)]
pub struct Admitted {
    /// The authenticated caller.
    pub caller: Arc<Caller>,
    /// Index of the group in the config's `groups`.
    pub group: usize,
    /// The body, its inspection and canonical form.
    pub body: RequestBody,
    /// When the request's budget runs out.
    pub deadline: Instant,
    /// The whole budget.
    pub budget: Duration,
    /// Caller headers passed on to an upstream of the caller's own dialect.
    pub forward: Vec<(http::HeaderName, HeaderValue)>,
    /// What a content stage does to the answer (PII restore or redaction).
    pub response_filter: Option<crate::policy::ResponseFilter>,
    /// Where a rule or a policy sent the request (instead of its group's plan).
    pub route: Option<crate::config::rules::Route>,
    /// Headers a policy added for every upstream attempt.
    pub upstream_headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl Admitted {
    /// The routing summary.
    pub fn summary(&self) -> &RequestSummary {
        &self.body.inspected().summary
    }
}

/// Admits a request, noting on the outcome what becomes known (caller, group, stream).
pub(super) async fn admit(
    cx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
    purpose: Purpose,
) -> Result<Admitted, Error> {
    let state = cx.state.clone();
    let caller = state.auth.require(headers, &[Role::Caller])?;
    let parent_id = headers
        .get("x-router-parent-id")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::bounds::id);
    cx.outcome.caller(&caller, parent_id);
    check_media(headers)?;
    let bytes = read_body(headers, body, state.config.server.max_body_bytes).await?;
    let mut body = RequestBody::inspect(cx.surface, purpose, bytes)?;
    let summary = &mut body.inspected_mut().summary;
    summary.session_key = session_key(headers, summary.session_key.take());
    let summary = &body.inspected().summary;
    cx.outcome.group(&summary.group, summary.stream);
    let group = state
        .config
        .group_index(&summary.group)
        .filter(|&g| caller.may_use(&state.config.groups[g].name))
        .ok_or_else(|| Error::ModelNotFound {
            group: crate::bounds::clip(&summary.group, crate::bounds::MAX_NAME_LEN).into_owned(),
        })?;
    let (deadline, budget) = deadline(cx, state.config.groups[group].timeout, headers);
    let forward = cx
        .surface
        .forwarded_headers()
        .iter()
        .filter_map(|name| {
            Some((
                http::HeaderName::from_static(name),
                headers.get(*name)?.clone(),
            ))
        })
        .collect();
    Ok(Admitted {
        caller,
        group,
        body,
        deadline,
        budget,
        forward,
        response_filter: None,
        route: None,
        upstream_headers: Vec::new(),
    })
}

/// Refuses bodies the router cannot read as sent: a declared media type that is not JSON, or a
/// content encoding other than `identity` (415).
fn check_media(headers: &HeaderMap) -> Result<(), Error> {
    if let Some(v) = headers.get(http::header::CONTENT_TYPE) {
        let media = v.to_str().unwrap_or("").split(';').next().unwrap_or("");
        let media = media.trim().to_ascii_lowercase();
        let json = media == "application/json" || media.ends_with("+json") || media.is_empty();
        if !json {
            return Err(Error::UnsupportedMediaType {
                media_type: crate::bounds::clip(&media, 64).into_owned(),
            });
        }
    }
    for v in headers.get_all(http::header::CONTENT_ENCODING) {
        let enc = v.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        if enc != "identity" {
            return Err(Error::UnsupportedEncoding {
                encoding: crate::bounds::clip(&enc, 32).into_owned(),
            });
        }
    }
    Ok(())
}

/// Reads the whole body, refusing more than `limit` bytes (early, from `content-length`, when
/// the client declares it).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::BodyTooLarge { limit }),
        Err(e) => Err(Error::BodyRead {
            reason: e.to_string(),
        }),
    }
}

/// The request's budget: the group's (or the server's) timeout, lowered by the caller's
/// `x-router-timeout-ms`, never raised. A budget received that way (from a router in front,
/// or a client) is noted on the usage record (`hop: timeout_ms=N`), so a chain shows what
/// each hop was given.
fn deadline(
    cx: &mut RequestContext,
    group_timeout: Option<Duration>,
    headers: &HeaderMap,
) -> (Instant, Duration) {
    let mut budget = group_timeout.unwrap_or(cx.state.config.server.request_timeout);
    if let Some(ms) = headers
        .get("x-router-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        budget = budget.min(Duration::from_millis(ms));
        cx.outcome.note("hop", format!("timeout_ms={ms}"));
    }
    (cx.arrival.started + budget, budget)
}

/// The session key for affinity: `x-session-id`, else Codex's `session-id` or Claude Code's
/// `x-claude-code-session-id`, else what the body carries (`prompt_cache_key`, the session in
/// `metadata.user_id`). A key longer than an id is replaced by its SHA-256, so the affinity
/// map holds bounded keys whatever callers send.
fn session_key(headers: &HeaderMap, from_body: Option<String>) -> Option<String> {
    let key = ["x-session-id", "session-id", "x-claude-code-session-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or(from_body)?;
    if key.len() <= crate::bounds::MAX_ID_LEN {
        return Some(key);
    }
    Some(crate::config::hex(&sha2::Sha256::digest(key.as_bytes())))
}
