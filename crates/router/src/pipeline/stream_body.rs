//! The body of a streamed answer. Passthrough: complete SSE events are forwarded as they arrive
//! (sharing the upstream's buffers), usage is tapped, and Chat's forced usage chunk is removed
//! when the caller did not ask for it. Translation: upstream events are decoded into canonical
//! events and encoded in the caller's dialect. Either way a broken, stalled or over-budget
//! upstream ends the stream with an error event in the caller's dialect, and so does an event
//! (or an unfinished line) longer than the provider's `max_event_bytes`. Upstream error events
//! pass through with the provider's own credential scrubbed out.

use super::record::Outcome;
use crate::error::Error;
use crate::pii::StreamFilter;
use crate::upstream::{Scrubber, UpstreamError};
use bytes::{Bytes, BytesMut};
use dialects::canonical::{Event, Usage};
use dialects::passthrough::{Tap, tap_event};
use dialects::translate::{StreamDecoder, StreamEncoder};
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
pub(super) struct StreamLimits {
    /// Longest silence between two upstream chunks.
    pub idle: Duration,
    /// When the request's budget runs out.
    pub deadline: Instant,
    /// The whole budget, for messages.
    pub budget: Duration,
    /// Largest event (or unfinished line) held.
    pub max_event_bytes: usize,
}

/// How upstream events become client events.
#[derive(Debug)]
pub(super) enum Mode {
    /// Same dialect: forward bytes, tap usage.
    Passthrough {
        /// The dialect of both sides.
        dialect: Dialect,
        /// Drop Chat's usage chunk (the router forced it on).
        drop_forced_usage: bool,
    },
    /// Different dialects: decode, then encode.
    Translate(Box<Translator>),
}

/// The translating state.
#[derive(Debug)]
pub(super) struct Translator {
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    events: Vec<Event>,
    usage: Usage,
    saw_usage: bool,
    /// PII restore or redaction on the answer's text.
    filter: Option<StreamFilter>,
    filtered: Vec<Event>,
}

impl Mode {
    /// A translating mode.
    pub(super) fn translate(
        decoder: StreamDecoder,
        encoder: StreamEncoder,
        filter: Option<StreamFilter>,
    ) -> Self {
        Mode::Translate(Box::new(Translator {
            decoder,
            encoder,
            events: Vec::new(),
            usage: Usage::default(),
            saw_usage: false,
            filter,
            filtered: Vec::new(),
        }))
    }
}

/// A streamed answer assembled for content capture: its text and tool calls. A passthrough
/// stream is decoded for it on the side (the bytes sent are untouched).
#[derive(Debug)]
pub(super) struct Assembly {
    decoder: Option<StreamDecoder>,
    events: Vec<Event>,
    text: String,
    calls: Vec<(usize, String, String)>,
}

impl Assembly {
    /// An assembly; `decode`: the dialect to decode passed-through events from.
    pub(super) fn new(decode: Option<Dialect>) -> Self {
        Assembly {
            decoder: decode.map(|d| StreamDecoder::new(d, None)),
            events: Vec::new(),
            text: String::new(),
            calls: Vec::new(),
        }
    }

    fn observe(&mut self, ev: &Event) {
        match ev {
            Event::TextDelta(t) => self.text.push_str(t),
            Event::ToolCallStart { index, name, .. } => {
                self.calls.push((*index, name.clone(), String::new()));
            }
            Event::ToolCallArgs { index, delta } => {
                if let Some(c) = self.calls.iter_mut().find(|c| c.0 == *index) {
                    c.2.push_str(delta);
                }
            }
            _ => {}
        }
    }

    /// A passed-through event's data.
    fn decode(&mut self, data: &[u8]) {
        let Some(d) = self.decoder.as_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut self.events);
        if d.decode(data, &mut events).is_ok() {
            for ev in events.drain(..) {
                self.observe(&ev);
            }
        }
        events.clear();
        self.events = events;
    }

    fn take(&mut self) -> (String, Vec<(String, String)>) {
        let calls = std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(_, name, args)| (name, args))
            .collect();
        (std::mem::take(&mut self.text), calls)
    }
}

/// Output ready to be sent, held while more of what has already arrived is taken: one piece
/// is kept as it came (no copy), more are joined into one frame, so one write carries them.
#[derive(Debug, Default)]
struct Held {
    first: Option<Bytes>,
    joined: BytesMut,
}

/// Held output beyond this is sent at once, even if more has arrived.
const HELD_MAX: usize = 64 * 1024;

/// Polls that find nothing new before held output is sent (see `SseBody::poll_frame`).
const PATIENCE: u8 = 2;

impl Held {
    fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if self.is_empty() {
            self.first = Some(b);
            return;
        }
        if let Some(f) = self.first.take() {
            self.joined.reserve(f.len() + b.len());
            self.joined.extend_from_slice(&f);
        }
        self.joined.extend_from_slice(&b);
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(self.joined.len(), Bytes::len)
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.joined.is_empty()
    }

    fn take(&mut self) -> Option<Bytes> {
        self.first
            .take()
            .or_else(|| (!self.joined.is_empty()).then(|| self.joined.split().freeze()))
    }
}

/// The streamed answer's body.
pub(super) struct SseBody {
    upstream: Incoming,
    first: Option<Bytes>,
    held: Held,
    /// Polls left that find nothing new before what is held is sent (see `poll_frame`).
    patience: u8,
    /// Upstream data arrived since the idle timer was last set.
    arrived: bool,
    splitter: sse::Splitter,
    mode: Mode,
    surface: Dialect,
    outcome: Option<Outcome>,
    saw_done: bool,
    upstream_error: bool,
    provider: String,
    scrubber: Scrubber,
    limits: StreamLimits,
    timer: Pin<Box<Sleep>>,
    assembly: Option<Box<Assembly>>,
}

/// Where a stream goes and what it carries, for [`SseBody::new`].
#[derive(Debug)]
pub(super) struct StreamSource {
    /// The first chunk, already read by the attempt.
    pub first: Bytes,
    /// The rest of the upstream body.
    pub rest: Incoming,
    /// The answering provider's name.
    pub provider: String,
    /// Removes the provider's credential from relayed error events.
    pub scrubber: Scrubber,
    /// Time and size limits.
    pub limits: StreamLimits,
}

fn next_wake(limits: &StreamLimits) -> tokio::time::Instant {
    tokio::time::Instant::from_std((Instant::now() + limits.idle).min(limits.deadline))
}

impl SseBody {
    /// Wraps an upstream stream whose first chunk was already read.
    pub(super) fn new(
        source: StreamSource,
        mode: Mode,
        surface: Dialect,
        outcome: Outcome,
        assembly: Option<Assembly>,
    ) -> Self {
        let limits = source.limits;
        SseBody {
            upstream: source.rest,
            first: Some(source.first),
            held: Held::default(),
            patience: 0,
            arrived: false,
            splitter: sse::Splitter::new(limits.max_event_bytes),
            mode,
            surface,
            outcome: Some(outcome),
            saw_done: false,
            upstream_error: false,
            provider: source.provider,
            scrubber: source.scrubber,
            timer: Box::pin(tokio::time::sleep_until(next_wake(&limits))),
            limits,
            assembly: assembly.map(Box::new),
        }
    }

    /// Turns the complete events in `chunk` into what to send (possibly empty).
    fn process(&mut self, chunk: Bytes) -> Result<Bytes, Error> {
        let run = self.splitter.push(chunk).map_err(|e| {
            broken(
                &self.provider,
                &format!("an event exceeded max_event_bytes ({} bytes)", e.limit),
            )
        })?;
        if run.is_empty() {
            return Ok(run);
        }
        let out = match &self.mode {
            Mode::Passthrough { .. } => self.pass(run),
            Mode::Translate(_) => self.translate(&run)?,
        };
        if !out.is_empty() {
            if let Some(o) = self.outcome.as_mut() {
                o.first_byte();
            }
        }
        Ok(out)
    }

    /// Passthrough: taps usage, the end and errors from each event, and forwards the run as it
    /// came — but for rare splices: the forced usage chunk dropped, error events scrubbed of the
    /// provider's credential.
    fn pass(&mut self, run: Bytes) -> Bytes {
        let Mode::Passthrough {
            dialect,
            drop_forced_usage,
        } = self.mode
        else {
            return run;
        };
        let mut edits: Vec<(std::ops::Range<usize>, Option<Vec<u8>>)> = Vec::new();
        let mut usage = None;
        for (offset, frame) in sse::frames(&run) {
            let Some(data) = sse::frame_data(frame) else {
                continue;
            };
            if let Some(a) = self.assembly.as_mut() {
                a.decode(&data);
            }
            match tap_event(dialect, sse::frame_event(frame), &data) {
                Tap::Done => self.saw_done = true,
                Tap::DoneWithUsage(u) => {
                    self.saw_done = true;
                    usage = Some(u);
                }
                Tap::Error => {
                    self.upstream_error = true;
                    if let Some(clean) = self.scrubber.scrub(frame) {
                        edits.push((offset..offset + frame.len(), Some(clean)));
                    }
                }
                Tap::ForcedUsage(u) => {
                    usage = Some(u);
                    if drop_forced_usage {
                        edits.push((offset..offset + frame.len(), None));
                    }
                }
                Tap::Usage(u) => {
                    usage = Some(usage.map_or(u, |mut a: Usage| {
                        a.merge(u);
                        a
                    }))
                }
                Tap::Other => {}
            }
        }
        if let (Some(u), Some(o)) = (usage, self.outcome.as_mut()) {
            o.add_usage(u);
        }
        if edits.is_empty() {
            run
        } else {
            splice(&run, &edits)
        }
    }

    /// Translation: decodes each upstream event into canonical events and encodes them in the
    /// caller's dialect (error messages scrubbed of the provider's credential).
    fn translate(&mut self, run: &[u8]) -> Result<Bytes, Error> {
        let Mode::Translate(t) = &mut self.mode else {
            return Ok(Bytes::new());
        };
        let mut out = BytesMut::new();
        for (_, frame) in sse::frames(run) {
            let Some(data) = sse::frame_data(frame) else {
                continue;
            };
            t.decoder.decode(&data, &mut t.events).map_err(|_| {
                broken(
                    &self.provider,
                    "an upstream event did not match its dialect",
                )
            })?;
            if let Some(f) = t.filter.as_mut() {
                for ev in t.events.drain(..) {
                    f.filter(ev, &mut t.filtered);
                }
                std::mem::swap(&mut t.events, &mut t.filtered);
            }
            for mut ev in t.events.drain(..) {
                match &mut ev {
                    Event::Usage(u) => {
                        t.usage.merge(*u);
                        t.saw_usage = true;
                    }
                    Event::Finish { .. } => self.saw_done = true,
                    Event::Error { message } => {
                        self.upstream_error = true;
                        if let Some(clean) = self.scrubber.scrub(message.as_bytes()) {
                            *message = String::from_utf8_lossy(&clean).into_owned();
                        }
                    }
                    _ => {}
                }
                if let Some(a) = self.assembly.as_mut() {
                    a.observe(&ev);
                }
                t.encoder.encode(&ev, &mut out);
            }
        }
        if t.saw_usage {
            if let Some(o) = self.outcome.as_mut() {
                o.usage(Some(t.usage));
            }
        }
        Ok(out.freeze())
    }

    /// The upstream ended cleanly: lets a translator finish, reports whether it ended properly.
    fn upstream_ended(&mut self) -> (bool, Bytes) {
        match &mut self.mode {
            Mode::Translate(t) => {
                let mut out = BytesMut::new();
                if !self.saw_done && t.decoder.end(&mut t.events) {
                    self.saw_done = true;
                }
                if let Some(f) = t.filter.as_mut() {
                    for ev in t.events.drain(..) {
                        f.filter(ev, &mut t.filtered);
                    }
                    f.flush(&mut t.filtered);
                    std::mem::swap(&mut t.events, &mut t.filtered);
                }
                for ev in t.events.drain(..) {
                    if let Some(a) = self.assembly.as_mut() {
                        a.observe(&ev);
                    }
                    t.encoder.encode(&ev, &mut out);
                }
                (self.saw_done || self.upstream_error, out.freeze())
            }
            Mode::Passthrough { .. } => (
                self.saw_done || self.upstream_error,
                Bytes::copy_from_slice(self.splitter.pending()),
            ),
        }
    }

    /// Ends the stream: records the outcome and, on failure, returns the error event to send.
    fn finish(&mut self, failure: Option<Error>) -> Option<Bytes> {
        let mut outcome = self.outcome.take()?;
        if let Some(a) = self.assembly.as_mut() {
            let (text, calls) = a.take();
            outcome.capture_stream(text, calls);
        }
        if let Mode::Translate(t) = &self.mode {
            outcome.warn(t.encoder.warnings().into_iter().map(|w| w.0));
        }
        match failure {
            None => {
                outcome.finish(200, self.upstream_error.then_some("upstream_stream_error"));
                None
            }
            Some(e) => {
                tracing::warn!(provider = %self.provider, error = e.kind(), "stream ended with an error");
                outcome.finish(200, Some(e.kind()));
                // A translator ends its own stream (keeping its indices and sequence numbers);
                // a passthrough stream gets the dialect's error event.
                match &mut self.mode {
                    Mode::Translate(t) => {
                        let mut out = BytesMut::new();
                        t.encoder.encode(
                            &Event::Error {
                                message: e.to_string(),
                            },
                            &mut out,
                        );
                        Some(out.freeze())
                    }
                    Mode::Passthrough { .. } => Some(e.stream_event(self.surface)),
                }
            }
        }
    }

    /// Ends the stream with `failure` (if any) after what is held and `tail`: the last frame.
    fn end(
        &mut self,
        tail: &[u8],
        failure: Option<Error>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let ev = self.finish(failure);
        let held = self.held.take();
        if tail.is_empty() && ev.is_none() {
            return Poll::Ready(held.map(|b| Ok(Frame::data(b))));
        }
        let mut out = BytesMut::from(held.as_deref().unwrap_or_default());
        out.extend_from_slice(tail);
        if let Some(ev) = ev {
            if !out.is_empty() && !out.ends_with(b"\n\n") {
                out.extend_from_slice(b"\n\n");
            }
            out.extend_from_slice(&ev);
        }
        Poll::Ready((!out.is_empty()).then(|| Ok(Frame::data(out.freeze()))))
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.end(&[], Some(e))
    }
}

/// `run` with each edited range replaced (or removed, for `None`); ranges are in order.
fn splice(run: &[u8], edits: &[(std::ops::Range<usize>, Option<Vec<u8>>)]) -> Bytes {
    let mut b = BytesMut::with_capacity(run.len());
    let mut at = 0;
    for (r, with) in edits {
        b.extend_from_slice(&run[at..r.start]);
        if let Some(w) = with {
            b.extend_from_slice(w);
        }
        at = r.end;
    }
    b.extend_from_slice(&run[at..]);
    b.freeze()
}

fn broken(provider: &str, reason: &str) -> Error {
    Error::Upstream(UpstreamError::Broken {
        provider: provider.to_string(),
        reason: reason.to_string(),
    })
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    /// Sends what has already arrived in one frame. hyper's client hands a body over one chunk
    /// at a time (its connection task refills a one-item slot once the chunk is taken), so
    /// after taking a chunk the body yields (waking itself) to let that task hand over the next
    /// one it has already read, and sends what it holds once a poll after the yield finds
    /// nothing new: one write per burst instead of one per event, for one extra poll when
    /// chunks come one at a time. hyper's server polls a pending body twice per poll of its
    /// connection, hence a patience of two polls.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            // The first chunk goes at once, with the response head: the caller's first token.
            match this.process(first) {
                Ok(out) if !out.is_empty() => return Poll::Ready(Some(Ok(Frame::data(out)))),
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
        loop {
            if this.outcome.is_none() {
                return Poll::Ready(this.held.take().map(|b| Ok(Frame::data(b))));
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.arrived = true;
                    match this.process(data) {
                        Ok(out) => this.held.push(out),
                        Err(e) => return this.fail(e),
                    }
                    this.patience = PATIENCE;
                    if this.held.len() >= HELD_MAX {
                        this.patience = 0;
                        return Poll::Ready(this.held.take().map(|b| Ok(Frame::data(b))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let e = broken(&this.provider, &e.to_string());
                    return this.fail(e);
                }
                Poll::Ready(None) => {
                    let (proper, tail) = this.upstream_ended();
                    let failure = (!proper)
                        .then(|| broken(&this.provider, "the stream ended before its end event"));
                    return this.end(&tail, failure);
                }
                Poll::Pending if !this.held.is_empty() => {
                    if this.patience > 0 {
                        // Woken every time, so what is held goes out within PATIENCE polls
                        // however the server polls (a repeated wake in one poll costs nothing).
                        cx.waker().wake_by_ref();
                        this.patience -= 1;
                        return Poll::Pending;
                    }
                    return Poll::Ready(this.held.take().map(|b| Ok(Frame::data(b))));
                }
                Poll::Pending => {
                    this.patience = 0;
                    if std::mem::take(&mut this.arrived) {
                        let wake = next_wake(&this.limits);
                        this.timer.as_mut().reset(wake);
                    }
                    ready!(this.timer.as_mut().poll(cx));
                    let err = if Instant::now() >= this.limits.deadline {
                        Error::DeadlineExceeded {
                            budget_ms: this.limits.budget.as_millis() as u64,
                        }
                    } else {
                        Error::Upstream(UpstreamError::Timeout {
                            provider: this.provider.clone(),
                            waited_ms: this.limits.idle.as_millis() as u64,
                        })
                    };
                    return this.fail(err);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none() && self.first.is_none() && self.held.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
