//! The HTTP server: routes, the per-request middleware (request id, span, panic guard), the
//! health and model-list endpoints, and client connection handling (cap, timeouts, drain).

mod connections;
mod context;
mod health;
mod models;

pub use connections::Limits;

use crate::error::Error;
use crate::reload::{IntoLive, Live};
use axum::Router;
use axum::routing::{get, post};
use dialects::Dialect;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The router's routes and middleware, serving whichever runtime `live` holds.
pub fn app(live: Arc<Live>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(crate::pipeline::chat_completions),
        )
        .route("/v1/messages", post(crate::pipeline::messages))
        .route(
            "/v1/responses",
            post(crate::pipeline::responses).get(crate::pipeline::responses_upgrade),
        )
        .route(
            "/v1/messages/count_tokens",
            post(crate::pipeline::count_tokens),
        )
        .route("/api/hello", axum::routing::any(health::hello))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get_one))
        .route("/v1/router/usage", get(crate::admin::own_usage))
        .route("/metrics", get(crate::admin::metrics))
        .route("/admin/reports/usage", get(crate::admin::usage_report))
        .route("/admin/requests/{id}", get(crate::admin::request_detail))
        .route(
            "/admin/requests/{id}/content",
            get(crate::admin::request_content),
        )
        .route("/admin/exports/usage", get(crate::admin::export))
        .route("/admin/limits", get(crate::admin::limits))
        .route("/admin/license", get(crate::admin::license))
        .route("/admin/config", get(crate::admin::config))
        .route("/admin/diagnostics", get(crate::admin::diagnostics))
        .route("/admin/config/reload", post(crate::admin::reload))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/version", get(health::version))
        .merge(crate::console::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(context::request_context))
        .with_state(live)
}

fn echo_path(uri: &http::Uri) -> String {
    crate::bounds::clip(uri.path(), crate::bounds::MAX_PATH_LEN).into_owned()
}

async fn unknown_route(method: http::Method, uri: http::Uri) -> axum::response::Response {
    Error::UnknownRoute {
        method: method.to_string(),
        path: echo_path(&uri),
    }
    .into_response(Dialect::OpenAiChat)
}

async fn method_not_allowed(method: http::Method, uri: http::Uri) -> axum::response::Response {
    Error::MethodNotAllowed {
        method: method.to_string(),
        path: echo_path(&uri),
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

/// Serves until `shutdown` resolves, then stops accepting, marks the runtime draining and waits
/// up to `server.drain_timeout` for in-flight requests. Returns whether the drain completed.
pub async fn serve(
    listener: TcpListener,
    state: impl IntoLive,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<bool> {
    let live = state.into_live();
    let app = app(live.clone());
    connections::run(listener, live, app, shutdown).await
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
