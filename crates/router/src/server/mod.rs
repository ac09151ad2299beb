//! The HTTP server: shared state, routes, per-request context and graceful shutdown.

mod context;
mod health;
mod models;

pub use context::RequestContext;
pub(crate) use models::require_caller;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::Error;
use crate::routing::{Affinity, Health, RoutingState};
use crate::upstream::Provider;
use crate::usage::Recorder;
use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use dialects::Dialect;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// What `/version` reports about the build.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git commit the binary was built from.
    pub commit: &'static str,
    /// Build date (UTC, RFC 3339).
    pub build_date: &'static str,
}

impl Default for BuildInfo {
    fn default() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: "unknown",
            build_date: "unknown",
        }
    }
}

/// Everything a request handler needs, shared by all requests.
#[derive(Debug)]
pub struct Runtime {
    /// The validated configuration.
    pub config: Config,
    /// Token -> caller.
    pub auth: Authenticator,
    /// One client per provider, indexed like `config.providers`.
    pub providers: Vec<Provider>,
    /// Where finished request outcomes go.
    pub recorder: Arc<Recorder>,
    /// Per-target health.
    pub health: Health,
    /// The usage store, for reports (the writer has its own handle).
    pub store: Option<Arc<dyn crate::usage::store::UsageStore>>,
    /// Session affinity.
    pub affinity: Affinity,
    /// Build metadata.
    pub build: BuildInfo,
    draining: AtomicBool,
}

impl Runtime {
    /// Builds the runtime for a validated config.
    pub fn new(
        config: Config,
        recorder: Recorder,
        build: BuildInfo,
        store: Option<Arc<dyn crate::usage::store::UsageStore>>,
    ) -> Self {
        let providers = config.providers.iter().map(Provider::new).collect();
        Runtime {
            store,
            health: Health::new(config.target_count, &config.routing),
            affinity: Affinity::new(
                config.routing.affinity_max_sessions,
                config.routing.affinity_ttl,
            ),
            auth: Authenticator::new(&config),
            providers,
            recorder: Arc::new(recorder),
            build,
            config,
            draining: AtomicBool::new(false),
        }
    }

    /// What routing consults besides the config.
    pub fn routing_state(&self) -> RoutingState<'_> {
        RoutingState {
            health: &self.health,
            affinity: &self.affinity,
        }
    }

    /// Whether shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Shared state handed to handlers.
pub type AppState = Arc<Runtime>;

/// The router's routes and middleware.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(crate::proxy::chat_completions))
        .route("/v1/messages", post(crate::proxy::messages))
        .route(
            "/v1/responses",
            post(crate::proxy::responses).get(crate::proxy::responses_upgrade),
        )
        .route(
            "/v1/messages/count_tokens",
            post(crate::proxy::count_tokens),
        )
        .route("/api/hello", axum::routing::any(health::hello))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get_one))
        .route("/v1/router/usage", get(crate::admin::own_usage))
        .route("/metrics", get(crate::admin::metrics))
        .route("/admin/reports/usage", get(crate::admin::usage_report))
        .route("/admin/requests/{id}", get(crate::admin::request_detail))
        .route("/admin/exports/usage", get(crate::admin::export))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/version", get(health::version))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(context::request_context))
        .with_state(state)
}

async fn unknown_route(method: http::Method, uri: http::Uri) -> axum::response::Response {
    Error::UnknownRoute {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
    .into_response(Dialect::OpenAiChat)
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> axum::response::Response {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
    .into_response(Dialect::OpenAiChat)
}

/// Binds the listening socket with an accept queue of `backlog` connections (the standard
/// library's 128 overflows when many clients connect at once, and every dropped SYN costs its
/// client a one-second retransmission).
pub fn bind(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Sends small writes (SSE events, the end of a chunked body) at once: without it, Nagle's
/// algorithm and the client's delayed ACK add ~40 ms to the end of every stream.
fn set_nodelay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// Serves until `shutdown` resolves, then stops accepting, marks the runtime draining and waits
/// up to `server.drain_timeout` for in-flight requests. Returns whether the drain completed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<bool> {
    let drain = state.config.server.drain_timeout;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let draining_state = state.clone();
    let signal = async move {
        shutdown.await;
        draining_state.draining.store(true, Ordering::Relaxed);
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down, draining in-flight requests"
        );
        let _ = started_tx.send(());
    };
    let server = axum::serve(listener.tap_io(set_nodelay), app(state).into_make_service())
        .with_graceful_shutdown(signal);
    let server = async move { server.await };
    tokio::pin!(server);
    tokio::select! {
        res = &mut server => return res.map(|_| true),
        _ = started_rx => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(res) => res.map(|_| true),
        Err(_) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    /// 600 clients connecting at once to a listener nobody accepts on yet: with the standard
    /// 128-connection queue most of them would wait a second for a SYN retransmission.
    #[tokio::test]
    async fn the_accept_queue_holds_a_burst_of_connections() {
        let listener = super::bind("127.0.0.1:0".parse().unwrap(), 4096).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..600).map(|_| {
            tokio::time::timeout(
                std::time::Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        });
        let results = futures_util::future::join_all(connects).await;
        let held = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(held, 600, "connections completed without an accept");
        drop(listener);
    }
}
