//! The proxy path: read and inspect the request, authorise the group, plan attempts, run them,
//! and answer — passing same-dialect traffic through untouched but for `model`.

mod attempt;
mod body;
mod chat;
mod sse_tap;

pub use chat::chat_completions;

use crate::server::{AppState, RequestContext};
use http::HeaderMap;
use std::time::{Duration, Instant};

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
