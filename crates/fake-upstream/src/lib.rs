//! A scriptable fake LLM provider for tests, benchmarks and the demo. It speaks OpenAI Chat
//! Completions (more dialects as the router grows), records every request it receives (method,
//! path, headers, body) and counts responses the client abandoned.
//!
//! Scripting, first match wins: the `x-fake-script` request header (a JSON [`Script`]), the
//! queue filled by `POST /_fake/scripts` (or [`FakeUpstream::enqueue`]), else the default
//! behaviour: a text reply echoing the prompt, a tool call when tools are offered and no tool
//! result came back yet, a schema example for JSON-schema response formats.
//!
//! Control endpoints: `GET /_fake/requests` (recorded requests), `DELETE /_fake/requests`
//! (forget them), `POST /_fake/scripts` (queue one script or an array), `GET /_fake/stats`.

mod agent;
mod anthropic;
mod chat;
mod responses;
mod script;

pub use agent::{Decision, ToolView, Turn, decide, file_task};
pub use script::{Script, ScriptUsage, ToolCall, example_from_schema};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, or as a string when it is not JSON.
    pub body: Value,
    /// The body's exact bytes (for tests of byte-for-byte passthrough; not logged).
    #[serde(skip)]
    pub raw: bytes::Bytes,
}

impl Recorded {
    /// The body's exact text.
    pub fn raw_body(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// State shared by the fake's handlers.
#[derive(Debug, Default)]
pub struct Shared {
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<Recorded>>,
    disconnects: AtomicU64,
    completed: AtomicU64,
    log: Option<Mutex<std::fs::File>>,
    no_record: bool,
}

/// Counts a response as completed when finished, or as abandoned by the client when dropped
/// before that.
#[derive(Debug)]
pub(crate) struct ResponseGuard {
    shared: Arc<Shared>,
    done: bool,
}

impl ResponseGuard {
    fn new(shared: Arc<Shared>) -> Self {
        ResponseGuard {
            shared,
            done: false,
        }
    }

    /// The response was delivered whole.
    pub(crate) fn complete(mut self) {
        self.done = true;
        self.shared.completed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        if !self.done {
            self.shared.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Value {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        if self.no_record {
            return json.unwrap_or(Value::Null);
        }
        let rec = Recorded {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: json
                .clone()
                .unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned())),
            raw: bytes::Bytes::copy_from_slice(body),
        };
        if let Some(log) = &self.log {
            if let Ok(line) = serde_json::to_string(&rec) {
                let mut f = log.lock().expect("log lock");
                let _ = writeln!(f, "{line}");
            }
        }
        self.requests.lock().expect("requests lock").push(rec);
        json.unwrap_or(Value::Null)
    }

    /// The script for this request: header, else queue, else default.
    fn script_for(&self, headers: &HeaderMap) -> Result<Script, String> {
        if let Some(v) = headers.get("x-fake-script") {
            return serde_json::from_slice(v.as_bytes())
                .map_err(|e| format!("bad x-fake-script: {e}"));
        }
        Ok(self
            .scripts
            .lock()
            .expect("scripts lock")
            .pop_front()
            .unwrap_or_default())
    }
}

/// Options for starting a fake.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Append every recorded request as a JSON line to this file.
    pub log_file: Option<std::path::PathBuf>,
    /// Keep nothing (for benchmarks: memory stays flat).
    pub no_record: bool,
}

/// A running fake upstream.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeUpstream {
    /// Starts a fake on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().expect("literal address"),
            Options::default(),
        )
        .await
    }

    /// Starts a fake on `addr`.
    pub async fn start_on(addr: SocketAddr, options: Options) -> std::io::Result<Self> {
        let log = match &options.log_file {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            log,
            no_record: options.no_record,
            ..Shared::default()
        });
        // A long accept queue, like the router's: the benchmark opens 1,000 streams at once.
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = app(shared.clone());
        tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeUpstream {
            addr,
            shared,
            shutdown: Some(tx),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL as an OpenAI SDK takes it (`http://127.0.0.1:PORT/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a script for the next request without an `x-fake-script` header.
    pub fn enqueue(&self, script: Script) {
        self.shared
            .scripts
            .lock()
            .expect("scripts lock")
            .push_back(script);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// Responses the client abandoned before they were complete.
    pub fn disconnects(&self) -> u64 {
        self.shared.disconnects.load(Ordering::Relaxed)
    }

    /// Responses delivered whole.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Relaxed)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The fake's routes.
pub fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/chat/completions", post(chat::handle))
        .route("/v1/messages", post(anthropic::handle))
        .route("/v1/responses", post(responses::handle))
        .route("/responses", post(responses::handle))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/data/{*path}", post(policy))
        .route("/v1/traces", post(traces))
        .route("/_fake/requests", get(list_requests).delete(clear_requests))
        .route("/_fake/scripts", post(push_scripts))
        .route("/_fake/stats", get(stats))
        .route("/", any(|| async { "fake-upstream" }))
        .fallback(unknown)
        .with_state(shared)
}

/// Records requests to unknown paths too (to learn what a client sends), answering 404.
async fn unknown(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.record(&method, &uri, &headers, &body);
    (StatusCode::NOT_FOUND, "fake-upstream: no such endpoint").into_response()
}

/// An OPA-style policy decision (`POST /v1/data/...` with `{"input": ...}`): always allows.
async fn policy(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.record(&method, &uri, &headers, &body);
    Json(serde_json::json!({"result": {"allow": true}})).into_response()
}

/// An OTLP/HTTP traces sink (`POST /v1/traces`): takes the export, answers with an empty
/// `ExportTraceServiceResponse` (for benchmarks with tracing on).
async fn traces(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.record(&method, &uri, &headers, &body);
    let mut r = Response::new(axum::body::Body::empty());
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}

async fn list_requests(State(s): State<Arc<Shared>>) -> Response {
    Json(s.requests.lock().expect("requests lock").clone()).into_response()
}

async fn clear_requests(State(s): State<Arc<Shared>>) -> StatusCode {
    s.requests.lock().expect("requests lock").clear();
    StatusCode::NO_CONTENT
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    Json(serde_json::json!({
        "requests": s.requests.lock().expect("requests lock").len(),
        "completed": s.completed.load(Ordering::Relaxed),
        "disconnects": s.disconnects.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn push_scripts(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed: Result<Vec<Script>, _> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(_)) => serde_json::from_slice(&body),
        _ => serde_json::from_slice::<Script>(&body).map(|s| vec![s]),
    };
    match parsed {
        Ok(scripts) => {
            let n = scripts.len();
            s.scripts.lock().expect("scripts lock").extend(scripts);
            Json(serde_json::json!({"queued": n})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// What every endpoint does first: record the request, pick its script, wait as scripted, and
/// answer scripted raw bodies and errors (in the endpoint's error shape). Returns the script
/// and the guard that counts the response, or the response already decided.
pub(crate) async fn prelude(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    error_response: fn(StatusCode, &str) -> Response,
) -> Result<(Script, ResponseGuard), Response> {
    shared.record(method, uri, headers, body);
    let script = shared
        .script_for(headers)
        .map_err(|e| error_response(StatusCode::BAD_REQUEST, &e))?;
    let guard = ResponseGuard::new(shared.clone());
    before_headers(&script).await;
    if script.raw_events.is_some() || script.endless_line_bytes.is_some() {
        return Err(raw_stream(&script, guard));
    }
    if let Some(resp) = raw_response(&script) {
        guard.complete();
        return Err(resp);
    }
    if let Some(status) = script.status.filter(|s| *s >= 400) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let msg = script
            .error
            .clone()
            .unwrap_or_else(|| format!("scripted error {}", status.as_u16()));
        guard.complete();
        return Err(with_headers(error_response(status, &msg), &script));
    }
    Ok((script, guard))
}

/// Waits for the script's delay, or forever when it hangs (the guard counts the disconnect).
async fn before_headers(script: &Script) {
    if script.hang {
        std::future::pending::<()>().await;
    }
    if script.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(script.delay_ms)).await;
    }
}

/// The stream of a script's `raw_events` (and endless line).
fn raw_stream(script: &Script, guard: ResponseGuard) -> Response {
    let mut events: Vec<Bytes> = script
        .raw_events
        .iter()
        .flatten()
        .map(|e| Bytes::from(e.clone()))
        .collect();
    let mut script = script.clone();
    if let Some(mut left) = script.endless_line_bytes {
        events.push(Bytes::from_static(b"data: "));
        while left > 0 {
            let n = left.min(64 * 1024);
            events.push(Bytes::from(vec![b'x'; n]));
            left -= n;
        }
        script.stall_after_events = Some(events.len());
    }
    sse_response(events, &script, guard)
}

/// The response for a script's `raw_body`, if it has one.
fn raw_response(script: &Script) -> Option<Response> {
    let body = script.raw_body.clone()?;
    let status = StatusCode::from_u16(script.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html"),
    );
    Some(with_headers(resp, script))
}

/// A streamed answer of pre-encoded SSE events, paced and cut as scripted.
pub(crate) fn sse_response(events: Vec<Bytes>, script: &Script, guard: ResponseGuard) -> Response {
    let resp = Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .header(axum::http::header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(event_stream(
            events, script, guard,
        )))
        .expect("static headers build");
    with_headers(resp, script)
}

/// Adds the script's extra headers.
pub(crate) fn with_headers(mut resp: Response, script: &Script) -> Response {
    for (k, v) in &script.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Streams the events with the script's pacing; breaks the connection where scripted.
fn event_stream(
    events: Vec<Bytes>,
    script: &Script,
    guard: ResponseGuard,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let delay = Duration::from_millis(script.chunk_delay_ms);
    let cut = script.close_after_events;
    let stall = script.stall_after_events;
    let state = (events.into_iter().enumerate(), Some(guard));
    futures_util::stream::unfold(state, move |(mut it, mut guard)| async move {
        let Some((i, ev)) = it.next() else {
            guard.take()?.complete();
            return None;
        };
        if cut == Some(i) {
            // Dropping the guard unfinished is not a client disconnect: mark it complete.
            guard.take()?.complete();
            return Some((Err(std::io::Error::other("scripted cut")), (it, None)));
        }
        if stall == Some(i) {
            std::future::pending::<()>().await;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok(ev), (it, guard)))
    })
}
