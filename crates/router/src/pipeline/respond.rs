//! Stage `respond`: the answer in the caller's dialect — a whole body (passed through, or
//! encoded from the decoded upstream answer), or a stream ([`SseBody`]: passthrough tap, or
//! decode -> canonical -> encode) that takes over the outcome and records it when it ends. An
//! error anywhere before this point is answered here too, in the caller's dialect.

use super::RequestContext;
use super::admit::Admitted;
use super::attempt::{Committed, Reply};
use super::conversion::{Checked, Conversion};
use super::stream_body::{Assembly, Mode, SseBody, StreamLimits, StreamSource};
use crate::error::Error;
use crate::pii::StreamFilter;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use dialects::Dialect;
use dialects::translate::{self, StreamDecoder, StreamEncoder};
use http::{HeaderMap, HeaderValue};

/// Answers with a committed attempt's reply.
pub(super) fn answer(
    cx: RequestContext,
    admitted: Admitted,
    conv: Conversion,
    committed: Committed,
) -> Response {
    let Committed {
        provider,
        dialect: upstream,
        head,
        reply,
        ..
    } = committed;
    match reply {
        Reply::Whole { body, checked } => whole(cx, admitted, conv, upstream, &head, body, checked),
        Reply::Stream { first, rest } => {
            stream(cx, admitted, conv, upstream, provider, first, rest)
        }
    }
}

/// A whole answer: the upstream body as it came (same dialect), or encoded from its decoded
/// form; recorded at once.
fn whole(
    mut cx: RequestContext,
    mut admitted: Admitted,
    mut conv: Conversion,
    upstream: Dialect,
    head: &http::response::Parts,
    body: Bytes,
    checked: Checked,
) -> Response {
    let surface = cx.surface;
    let body = match checked {
        Checked::Usage(usage) => {
            cx.outcome.usage(usage);
            body
        }
        Checked::Decoded(resp) => {
            let resp = match conv.structured_tool() {
                Some(tool) => resp.answer_structured(tool),
                None => *resp,
            };
            cx.outcome.usage(Some(resp.usage));
            let answer = conv.answer_context(&admitted);
            Bytes::from(translate::encode_response(surface, &resp, &answer))
        }
    };
    let body = match admitted.response_filter.as_mut() {
        Some(f) => f
            .redactor
            .answer(f.mode, surface, &body)
            .map_or(body, Bytes::from),
        None => body,
    };
    cx.outcome.capture_whole(&body);
    let content_type = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .filter(|_| upstream == surface)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    cx.outcome.warn(conv.take_warnings());
    let mut resp = Response::new(Body::from(body));
    *resp.headers_mut() = HeaderMap::with_capacity(16);
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, content_type);
    cx.outcome.response_headers(h, surface);
    cx.outcome.first_byte();
    cx.outcome.finish(200, None);
    resp
}

/// A streamed answer: the outcome moves into the body, which records it when the stream ends.
fn stream(
    mut cx: RequestContext,
    mut admitted: Admitted,
    mut conv: Conversion,
    upstream: Dialect,
    provider: usize,
    first: Bytes,
    rest: hyper::body::Incoming,
) -> Response {
    let surface = cx.surface;
    let filter = admitted
        .response_filter
        .take()
        .map(|f| StreamFilter::new(f.redactor, f.mode))
        .filter(StreamFilter::active);
    let mode = if upstream == surface && !admitted.body.canonical_rewritten() && filter.is_none() {
        Mode::Passthrough {
            dialect: surface,
            drop_forced_usage: !admitted.body.inspected().include_usage,
        }
    } else {
        let answer = conv.answer_context(&admitted);
        Mode::translate(
            StreamDecoder::new(upstream, conv.take_structured_tool()),
            StreamEncoder::new(surface, answer),
            filter,
        )
    };
    let p = &cx.state.providers[provider];
    let source = StreamSource {
        first,
        rest,
        provider: p.name.clone(),
        scrubber: p.scrubber(),
        limits: StreamLimits {
            idle: p.read_timeout,
            deadline: admitted.deadline,
            budget: admitted.budget,
            max_event_bytes: p.max_event_bytes,
        },
    };
    cx.outcome.warn(conv.take_warnings());
    cx.outcome.warn(admitted.body.take_decode_warnings());
    let mut resp = Response::new(Body::empty());
    *resp.headers_mut() = HeaderMap::with_capacity(16);
    let h = resp.headers_mut();
    cx.outcome.response_headers(h, surface);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    let assemble = cx
        .outcome
        .capturing()
        .then(|| Assembly::new(matches!(mode, Mode::Passthrough { .. }).then_some(upstream)));
    *resp.body_mut() = Body::new(SseBody::new(source, mode, surface, cx.outcome, assemble));
    resp
}

/// Answers with an error in the caller's dialect, and records it.
pub(super) fn refuse(mut cx: RequestContext, e: Error) -> Response {
    let kind = e.kind();
    if cx.outcome.capturing() {
        cx.outcome
            .capture_whole(&Bytes::from(e.encoded(cx.surface).1));
    }
    let mut resp = e.into_response(cx.surface);
    cx.outcome.response_headers(resp.headers_mut(), cx.surface);
    cx.outcome.finish(resp.status().as_u16(), Some(kind));
    resp
}
