//! Per-request middleware: the [`Arrival`] (request id accepted or generated, returned on every
//! response; arrival times), a tracing span, and catching handler panics as 500s.

use crate::error::Error;
use crate::pipeline::Arrival;
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

/// Middleware: sets up the [`Arrival`], runs the handler inside a span with the request
/// id, turns a panic into a 500, and puts `x-request-id` on the response.
pub(super) async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id: Arc<str> = match req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::bounds::id)
    {
        Some(id) => id.into(),
        None => crate::ids::uuid_v7().into(),
    };
    let ctx = Arrival {
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
        resp.headers_mut()
            .insert(crate::header_names::X_REQUEST_ID, v);
    }
    resp
}
