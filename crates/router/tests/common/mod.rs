//! Test harness: a fake upstream and an in-process router on ephemeral loopback ports, plus a
//! small HTTP client.
#![allow(dead_code)]

use bytes::Bytes;
use fake_upstream::FakeUpstream;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use router::state::{BuildInfo, Runtime};
use router::usage::{Recorder, RequestOutcome};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The caller token every test config has.
pub(crate) const TOKEN: &str = "test-token";

/// A router with a fake upstream behind it.
pub(crate) struct Harness {
    pub fake: FakeUpstream,
    pub addr: SocketAddr,
    /// The runtime the harness started with (`live.current()` is the one in force).
    pub state: Arc<Runtime>,
    /// The router across reloads (its source is `config_path`).
    pub live: Arc<router::reload::Live>,
    /// The config file the router reloads from.
    pub config_path: std::path::PathBuf,
    pub outcomes: mpsc::Receiver<RequestOutcome>,
    pub writer: Option<Arc<router::usage::Writer>>,
    pub store: Option<Arc<dyn router::usage::store::UsageStore>>,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<bool>>>,
}

/// A config whose `FAKE` placeholder is replaced by the fake's base URL. The default config has
/// provider `fake`, groups `fast` (one target) and `coder` (two, priority, all capabilities),
/// a caller `app` (token TOKEN, groups fast+coder) and `metrics` (metrics-admin only).
pub(crate) fn default_config() -> String {
    r#"
    [server]
    listen = "127.0.0.1:0"
    max_body_bytes = 65536
    drain_timeout_ms = 5000

    [providers.fake]
    kind = "openai"
    base_url = "FAKE"
    api_key = "sk-upstream-secret"
    headers = { "x-provider-extra" = "on" }

    [groups.fast]
    [[groups.fast.targets]]
    provider = "fake"
    model = "fake-fast"
    capabilities = ["tools", "images", "json_schema"]

    [groups.coder]
    strategy = "priority"
    [[groups.coder.targets]]
    provider = "fake"
    model = "fake-coder-1"
    capabilities = ["tools", "images", "json_schema"]
    [[groups.coder.targets]]
    provider = "fake"
    model = "fake-coder-2"
    capabilities = ["tools", "images", "json_schema"]

    [groups.secret]
    [[groups.secret.targets]]
    provider = "fake"
    model = "fake-secret"

    [[callers]]
    name = "app"
    project = "proj"
    groups = ["fast", "coder"]
    token = "test-token"

    [[callers]]
    name = "metrics"
    roles = ["metrics-admin"]
    groups = ["*"]
    token = "metrics-token"
    "#
    .to_string()
}

impl Harness {
    /// Starts with the default config.
    pub(crate) async fn start() -> Harness {
        Self::with_config(&default_config()).await
    }

    /// Starts with a config text (`FAKE` = the fake's OpenAI base URL, `FAKE_ROOT` = its root,
    /// the Anthropic base URL).
    pub(crate) async fn with_config(text: &str) -> Harness {
        Self::licensed(text, Default::default()).await
    }

    /// Starts with a config text under a license state (its clock, its license).
    pub(crate) async fn licensed(
        text: &str,
        license: Arc<router::license::LicenseState>,
    ) -> Harness {
        let fake = FakeUpstream::start().await.expect("fake starts");
        let root = format!("http://{}", fake.addr());
        let text = text
            .replace("FAKE_ROOT", &root)
            .replace("FAKE", &fake.openai_base_url());
        let config = router::config::parse(&text).unwrap_or_else(|e| panic!("config: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (recorder, outcomes) = Recorder::new(&config).with_outcomes(1024);
        // As `serve` does: traces exported when `[telemetry]` names a collector.
        let recorder = match router::telemetry::Tracer::from_config(&config.telemetry)
            .expect("the exporter builds")
        {
            Some(t) => recorder.with_tracer(Arc::new(t)),
            None => recorder,
        };
        let state = Arc::new(
            Runtime::new(config, recorder, BuildInfo::default(), None).with_license(license),
        );
        let config_path = config_file(&text);
        let live = router::reload::Live::from_arc(state.clone(), Some(config_path.clone()));
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(router::server::serve(listener, live.clone(), async {
            let _ = rx.await;
        }));
        Harness {
            fake,
            addr,
            state,
            live,
            config_path,
            outcomes,
            writer: None,
            store: None,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Starts with a config text and a usage store at `store_url` (written every 20 ms).
    pub(crate) async fn with_store(text: &str, store_url: &str) -> Harness {
        let fake = FakeUpstream::start().await.expect("fake starts");
        let root = format!("http://{}", fake.addr());
        let text = text
            .replace("FAKE_ROOT", &root)
            .replace("FAKE", &fake.openai_base_url());
        let config = router::config::parse(&text).unwrap_or_else(|e| panic!("config: {e}"));
        let store = router::usage::store::open(store_url).expect("store opens");
        store.migrate().await.expect("store migrates");
        let spool = std::env::temp_dir().join(format!("sr-spool-{}", uuid_like()));
        let writer = Arc::new(router::usage::Writer::spawn(
            store.clone(),
            router::config::WriterConfig {
                batch_size: 100,
                flush_interval: std::time::Duration::from_millis(20),
                queue_capacity: 10_000,
                spool_path: spool,
                spool_max_bytes: 1 << 30,
                retry_interval: std::time::Duration::from_millis(100),
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (recorder, outcomes) = Recorder::new(&config)
            .with_writer(writer.clone())
            .with_outcomes(1024);
        let state = Arc::new(Runtime::new(
            config,
            recorder,
            BuildInfo::default(),
            Some(store.clone()),
        ));
        let config_path = config_file(&text);
        let live = router::reload::Live::from_arc(state.clone(), Some(config_path.clone()));
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(router::server::serve(listener, live.clone(), async {
            let _ = rx.await;
        }));
        Harness {
            fake,
            addr,
            state,
            live,
            config_path,
            outcomes,
            writer: Some(writer),
            store: Some(store),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Waits until the writer has stored `n` records in all.
    pub(crate) async fn written(&self, n: u64) -> bool {
        let w = self.writer.clone().expect("a harness with a store");
        eventually(move || w.stats.written.load(std::sync::atomic::Ordering::Relaxed) >= n).await
    }

    /// A config text with `FAKE` and `FAKE_ROOT` replaced as at start.
    pub(crate) fn render(&self, text: &str) -> String {
        text.replace("FAKE_ROOT", &format!("http://{}", self.fake.addr()))
            .replace("FAKE", &self.fake.openai_base_url())
    }

    /// Writes `text` (rendered) as the config file the router reloads from.
    pub(crate) fn rewrite(&self, text: &str) {
        let tmp = self.config_path.with_extension("tmp");
        std::fs::write(&tmp, self.render(text)).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Begins graceful shutdown.
    pub(crate) fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// The next recorded outcome (waits up to 5 s).
    pub(crate) async fn outcome(&mut self) -> RequestOutcome {
        tokio::time::timeout(std::time::Duration::from_secs(5), self.outcomes.recv())
            .await
            .expect("an outcome within 5 s")
            .expect("recorder alive")
    }

    /// POSTs JSON to the chat endpoint with the test token.
    pub(crate) async fn chat(&self, body: &Value) -> Resp {
        send(
            "POST",
            &self.url("/v1/chat/completions"),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Bytes::from(body.to_string()),
        )
        .await
    }
}

/// A whole response.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `data:` payloads of an SSE body.
    pub(crate) fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(str::to_string)
            .collect()
    }
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Starts a request and returns the streaming response.
pub(crate) async fn start(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> http::Response<hyper::body::Incoming> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    client()
        .request(req.body(Full::new(body)).unwrap())
        .await
        .expect("request sent")
}

/// Sends a request and reads the whole response.
pub(crate) async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Bytes) -> Resp {
    let resp = start(method, url, headers, body).await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body read").to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Writes a config text to a fresh temporary file.
pub(crate) fn config_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sr-config-{}.toml", uuid_like()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A unique name for temporary files and schemas.
pub(crate) fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000
    )
}

/// A fresh SQLite store URL in the temp directory.
pub(crate) fn sqlite_url() -> String {
    format!(
        "sqlite://{}",
        std::env::temp_dir()
            .join(format!("sr-usage-{}.db", uuid_like()))
            .display()
    )
}

/// A fresh PostgreSQL schema on the local server (`SMART_ROUTER_TEST_PG` overrides the URL).
pub(crate) fn postgres_url() -> String {
    let base = std::env::var("SMART_ROUTER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    format!("{base}?schema=sr_test_{}", uuid_like())
}

/// Polls `cond` every 10 ms for up to 5 s.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cond()
}
