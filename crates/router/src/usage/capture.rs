//! Captured content: the request and response bodies of requests a capture policy selects,
//! kept in their own table of the usage store (never in usage records, logs or metrics), read
//! only by admins, and purged by the policy's own retention. A request's capture is prepared
//! while it is served ([`PendingCapture`]) and, when its outcome is recorded and the policy
//! selects it, handed to [`CaptureSink`]: a bounded queue and one task writing to the store.
//! A capture that finds the queue full or the store down is dropped and counted — capture is
//! evidence for debugging, never a reason to slow or fail a request.

use super::record::CapturedContent;
use super::store::UsageStore;
use crate::config::capture::{CaptureMode, CapturePolicyConfig};
use crate::pii::{Detector, Redactor, ResponseMode};
use bytes::Bytes;
use dialects::Dialect;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// What a request will capture, gathered while it is served.
#[derive(Debug)]
pub struct PendingCapture {
    policy: CapturePolicyConfig,
    /// Chosen already (`all`, or `sampled` and drawn); `errors` decides at the end.
    selected: bool,
    surface: Dialect,
    /// The request body as received.
    request: Bytes,
    /// Detectors for redaction (the request's PII policy's, or every built-in).
    detector: Option<Arc<Detector>>,
    response: Option<Response>,
}

/// The answer as captured.
#[derive(Debug)]
enum Response {
    /// A whole body, in the caller's dialect.
    Whole(Bytes),
    /// A stream's assembled text and tool calls.
    Stream {
        text: String,
        tool_calls: Vec<(String, String)>,
    },
}

impl PendingCapture {
    /// A capture for a request on `surface` under `policy`; `None` when the policy will not
    /// capture it (mode `none`, or not drawn by `sampled`).
    pub fn new(
        policy: &CapturePolicyConfig,
        surface: Dialect,
        request: Bytes,
        detector: Option<Arc<Detector>>,
    ) -> Option<Self> {
        let selected = match policy.capture {
            CaptureMode::None => return None,
            CaptureMode::Errors => false,
            CaptureMode::Sampled(rate) => {
                if fastrand::f64() >= rate {
                    return None;
                }
                true
            }
            CaptureMode::All => true,
        };
        Some(PendingCapture {
            policy: policy.clone(),
            selected,
            surface,
            request,
            detector: detector.filter(|_| policy.redact_pii),
            response: None,
        })
    }

    /// The policy's name.
    pub fn policy(&self) -> &Arc<str> {
        &self.policy.name
    }

    /// The whole answer the caller received.
    pub fn whole(&mut self, body: Bytes) {
        self.response = Some(Response::Whole(body));
    }

    /// A streamed answer, assembled.
    pub fn stream(&mut self, text: String, tool_calls: Vec<(String, String)>) {
        self.response = Some(Response::Stream { text, tool_calls });
    }

    /// Whether the content is stored: chosen already (`all`, `sampled`), or the request
    /// `failed` (`errors`).
    pub fn selected(&self, failed: bool) -> bool {
        self.selected || failed
    }

    /// The content to store (redacted and cut as the policy says). Costly on large bodies: the
    /// sink's task calls it, off the request path.
    fn content(self, request_id: &str) -> CapturedContent {
        let redactor = self
            .policy
            .redact_pii
            .then(|| Redactor::new(self.detector.clone().unwrap_or_else(all_built_ins)));
        let mut redactor = redactor;
        let request = match redactor.as_mut() {
            Some(r) => {
                match serde_json::from_slice::<serde_json::Value>(&self.request) {
                    Ok(mut v) => {
                        r.redact_request(self.surface, &mut v);
                        serde_json::to_string(&v).expect("a JSON value serializes")
                    }
                    // Not JSON: redacted as text.
                    Err(_) => {
                        let mut s = String::from_utf8_lossy(&self.request).into_owned();
                        r.text(&mut s, true);
                        s
                    }
                }
            }
            None => String::from_utf8_lossy(&self.request).into_owned(),
        };
        let response = match self.response {
            None => String::new(),
            Some(Response::Whole(body)) => match redactor.as_mut() {
                Some(r) => match r.answer(ResponseMode::Redact, self.surface, &body) {
                    Some(b) => String::from_utf8_lossy(&b).into_owned(),
                    None => {
                        // Not an answer (an error body): redacted as text.
                        let mut s = String::from_utf8_lossy(&body).into_owned();
                        r.text(&mut s, true);
                        s
                    }
                },
                None => String::from_utf8_lossy(&body).into_owned(),
            },
            Some(Response::Stream {
                mut text,
                mut tool_calls,
            }) => {
                if let Some(r) = redactor.as_mut() {
                    r.text(&mut text, true);
                    for (_, args) in &mut tool_calls {
                        r.text(args, true);
                    }
                }
                let calls: Vec<serde_json::Value> = tool_calls
                    .iter()
                    .map(|(name, args)| serde_json::json!({"name": name, "arguments": args}))
                    .collect();
                serde_json::json!({"text": text, "tool_calls": calls}).to_string()
            }
        };
        let max = self.policy.max_body_bytes;
        let (request_body, request_truncated) = cut(request, max);
        let (response_body, response_truncated) = cut(response, max);
        let now = crate::time::now_ms();
        CapturedContent {
            capture_id: crate::ids::uuid_v7(),
            request_id: request_id.to_string(),
            policy: self.policy.name.to_string(),
            captured_at_ms: now,
            expires_at_ms: now + i64::from(self.policy.retention_days) * 86_400_000,
            surface: self.surface.as_str().to_string(),
            request_body,
            request_truncated,
            response_body,
            response_truncated,
            pii_redacted: self.policy.redact_pii,
        }
    }
}

/// Every built-in detector, for capture policies that redact where no PII policy applies.
fn all_built_ins() -> Arc<Detector> {
    static ALL: std::sync::OnceLock<Arc<Detector>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let names: Vec<String> = crate::pii::built_in_names().map(String::from).collect();
        Arc::new(Detector::new(&names, &[]).expect("the built-in detectors compile"))
    })
    .clone()
}

/// `s` cut to at most `max` bytes (at a character boundary), and whether it was cut.
fn cut(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    (s, true)
}

/// Captures on their way to the store: a bounded queue and one writing task.
#[derive(Debug, Clone)]
pub struct CaptureSink {
    tx: mpsc::Sender<(Box<PendingCapture>, String)>,
    dropped: Arc<AtomicU64>,
}

/// Captures queued at most.
const QUEUE: usize = 256;

impl CaptureSink {
    /// Starts the writing task on `store` (on the current runtime).
    pub fn spawn(store: Arc<dyn UsageStore>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Box<PendingCapture>, String)>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        tokio::spawn(async move {
            while let Some((pending, request_id)) = rx.recv().await {
                // Redaction and cutting are CPU work: not on the runtime's threads.
                let Ok(c) = tokio::task::spawn_blocking(move || pending.content(&request_id)).await
                else {
                    counter.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if let Err(e) = store.insert_capture(&c).await {
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, policy = %c.policy, "captured content not stored");
                }
            }
        });
        CaptureSink { tx, dropped }
    }

    /// Queues a selected capture of request `request_id`; a full queue drops it (counted).
    pub fn submit(&self, pending: Box<PendingCapture>, request_id: &str) {
        if self.tx.try_send((pending, request_id.to_string())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Captures dropped so far (queue full, or the store failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
