//! A Chat Completions stream passed through to the client as it arrives: complete SSE events
//! are forwarded (sharing the upstream's buffers), usage is tapped from the final chunk, and the
//! usage chunk the router forced on is removed again when the caller did not ask for it. A
//! broken, stalled or over-budget upstream ends the stream with an error event.

use crate::error::Error;
use crate::upstream::UpstreamError;
use crate::usage::Outcome;
use bytes::{Bytes, BytesMut};
use dialects::openai_chat::stream::{ChunkKind, tap_chunk};
use dialects::{Dialect, sse};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Time limits of a stream once it has begun.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Longest silence between two upstream chunks.
    pub idle: Duration,
    /// When the request's budget runs out.
    pub deadline: Instant,
    /// The whole budget, for messages.
    pub budget: Duration,
}

/// The passthrough body of a Chat stream.
pub struct ChatSseTap {
    upstream: Incoming,
    first: Option<Bytes>,
    splitter: sse::Splitter,
    drop_usage_chunk: bool,
    outcome: Option<Outcome>,
    saw_done: bool,
    upstream_error: bool,
    provider: String,
    idle: Duration,
    deadline: Instant,
    budget: Duration,
    timer: Pin<Box<Sleep>>,
}

impl ChatSseTap {
    /// Wraps an upstream stream whose first chunk was already read.
    pub fn new(
        first: Bytes,
        upstream: Incoming,
        caller_wants_usage: bool,
        outcome: Outcome,
        provider: String,
        limits: StreamLimits,
    ) -> Self {
        let StreamLimits {
            idle,
            deadline,
            budget,
        } = limits;
        let timer = Box::pin(tokio::time::sleep_until(next_wake(idle, deadline)));
        ChatSseTap {
            upstream,
            first: Some(first),
            splitter: sse::Splitter::new(),
            drop_usage_chunk: !caller_wants_usage,
            outcome: Some(outcome),
            saw_done: false,
            upstream_error: false,
            provider,
            idle,
            deadline,
            budget,
            timer,
        }
    }

    /// Forwards the complete events in `chunk`, tapping usage and dropping the forced usage
    /// chunk. Returns what to send (possibly empty).
    fn process(&mut self, chunk: Bytes) -> Bytes {
        let run = self.splitter.push(chunk);
        if run.is_empty() {
            return run;
        }
        let mut dropped: Option<std::ops::Range<usize>> = None;
        for (offset, frame) in sse::frames(&run) {
            let Some(data) = sse::frame_data(frame) else {
                continue;
            };
            match tap_chunk(&data) {
                ChunkKind::Done => self.saw_done = true,
                ChunkKind::Error => self.upstream_error = true,
                ChunkKind::UsageOnly(u) => {
                    self.set_usage(u);
                    if self.drop_usage_chunk {
                        dropped = Some(offset..offset + frame.len());
                    }
                }
                ChunkKind::WithUsage(u) => self.set_usage(u),
                ChunkKind::Other => {}
            }
        }
        let out = match dropped {
            None => run,
            Some(r) => {
                let mut b = BytesMut::with_capacity(run.len() - r.len());
                b.extend_from_slice(&run[..r.start]);
                b.extend_from_slice(&run[r.end..]);
                b.freeze()
            }
        };
        if !out.is_empty() {
            if let Some(o) = self.outcome.as_mut() {
                o.first_byte();
            }
        }
        out
    }

    fn set_usage(&mut self, u: dialects::canonical::Usage) {
        if let Some(o) = self.outcome.as_mut() {
            o.get_mut().usage = Some(u);
        }
    }

    /// Ends the stream: records the outcome and, on failure, returns the error event to send.
    fn finish(&mut self, failure: Option<Error>) -> Option<Bytes> {
        let outcome = self.outcome.take()?;
        match failure {
            None => {
                let kind = self.upstream_error.then_some("upstream_stream_error");
                outcome.finish(200, kind);
                None
            }
            Some(e) => {
                tracing::warn!(provider = %self.provider, error = e.kind(), "stream ended with an error");
                outcome.finish(200, Some(e.kind()));
                Some(e.stream_event(Dialect::OpenAiChat))
            }
        }
    }

    fn broken(&self, reason: String) -> Error {
        Error::Upstream(UpstreamError::Broken {
            provider: self.provider.clone(),
            reason,
        })
    }
}

fn next_wake(idle: Duration, deadline: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std((Instant::now() + idle).min(deadline))
}

impl Body for ChatSseTap {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            let out = this.process(first);
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        loop {
            if this.outcome.is_none() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let wake = next_wake(this.idle, this.deadline);
                    this.timer.as_mut().reset(wake);
                    let out = this.process(data);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let err = this.broken(e.to_string());
                    return Poll::Ready(this.finish(Some(err)).map(|b| Ok(Frame::data(b))));
                }
                Poll::Ready(None) => {
                    let failure = if this.saw_done || this.upstream_error {
                        None
                    } else {
                        Some(this.broken("the stream ended without [DONE]".into()))
                    };
                    let mut tail = this.splitter.pending().to_vec();
                    let event = this.finish(failure);
                    if let Some(e) = event {
                        if !tail.is_empty() {
                            tail.extend_from_slice(b"\n\n");
                        }
                        tail.extend_from_slice(&e);
                    }
                    if tail.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                }
                Poll::Pending => {
                    ready!(this.timer.as_mut().poll(cx));
                    let err = if Instant::now() >= this.deadline {
                        Error::DeadlineExceeded {
                            budget_ms: this.budget.as_millis() as u64,
                        }
                    } else {
                        Error::Upstream(UpstreamError::Timeout {
                            provider: this.provider.clone(),
                            waited_ms: this.idle.as_millis() as u64,
                        })
                    };
                    return Poll::Ready(this.finish(Some(err)).map(|b| Ok(Frame::data(b))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none() && self.first.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
