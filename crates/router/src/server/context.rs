//! Per-request context: request id (accepted or generated, returned on every response), start
//! time, a tracing span, and catching handler panics as 500s.

use crate::error::Error;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use dialects::Dialect;
use futures_util::FutureExt;
use http::HeaderValue;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::Instrument;

/// What every handler knows about its request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (caller's if valid, else a new UUIDv7).
    pub request_id: Arc<str>,
    /// Arrival time, for latencies.
    pub started: Instant,
    /// Arrival wall-clock time, for records.
    pub started_at: SystemTime,
}

/// The caller's `x-request-id` if printable ASCII of at most 128 characters.
fn accepted_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(s)
}

/// Middleware: sets up the [`RequestContext`], runs the handler inside a span with the request
/// id, turns a panic into a 500, and puts `x-request-id` on the response.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id: Arc<str> = match req
        .headers()
        .get("x-request-id")
        .and_then(accepted_request_id)
    {
        Some(id) => id.into(),
        None => crate::ids::uuid_v7().into(),
    };
    let ctx = RequestContext {
        request_id: request_id.clone(),
        started: Instant::now(),
        started_at: SystemTime::now(),
    };
    req.extensions_mut().insert(ctx);
    let span = tracing::info_span!("request", request_id = &*request_id);
    let result = AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .instrument(span)
        .await;
    let mut resp = result.unwrap_or_else(|_| {
        tracing::error!(request_id = %request_id, "handler panicked");
        Error::Internal.into_response(Dialect::OpenAiChat)
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
