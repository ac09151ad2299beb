//! Upstream providers: one module per provider kind implementing [`Upstream`], and the shared
//! HTTP client ([`Provider`]) that sends an attempt and classifies its failure.

mod anthropic;
mod openai;
mod openai_responses;

use crate::config::{ProviderConfig, ProviderKind, Secret};
use bytes::Bytes;
use dialects::Dialect;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// What differs between provider kinds on the wire.
pub trait Upstream: Send + Sync + std::fmt::Debug {
    /// The dialect the provider speaks.
    fn dialect(&self) -> Dialect;
    /// Path appended to the provider's `base_url` for a generation request.
    fn path(&self) -> &'static str;
    /// Path for token counting, when the kind has such an endpoint.
    fn count_tokens_path(&self) -> Option<&'static str> {
        None
    }
    /// Sets the provider credential (and any protocol headers) on an outgoing request.
    fn authorize(&self, key: Option<&Secret>, headers: &mut HeaderMap);
}

/// The module for a provider kind.
fn upstream_for(kind: ProviderKind) -> Box<dyn Upstream> {
    match kind {
        ProviderKind::OpenAi => Box::new(openai::OpenAi),
        ProviderKind::Anthropic => Box::new(anthropic::Anthropic),
        ProviderKind::OpenAiResponses => Box::new(openai_responses::OpenAiResponses),
    }
}

/// Why an attempt at a target failed. Knows whether another attempt may help.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("could not connect to provider {provider}: {reason}")]
    Connect {
        /// Provider name.
        provider: String,
        /// The transport error (no URL, no credential).
        reason: String,
    },
    /// Nothing arrived in time.
    #[error("provider {provider} did not answer within {waited_ms} ms")]
    Timeout {
        /// Provider name.
        provider: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The provider answered with an error status.
    #[error("provider {provider} returned HTTP {}", status.as_u16())]
    Status {
        /// Provider name.
        provider: String,
        /// The status.
        status: StatusCode,
        /// The provider's error body.
        body: Bytes,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The provider rejected the router's own credential (401/403).
    #[error("the router's credential for provider {provider} was rejected (HTTP {status})")]
    CredentialRejected {
        /// Provider name.
        provider: String,
        /// 401 or 403.
        status: u16,
    },
    /// A success status with a body we cannot use.
    #[error("provider {provider} returned an invalid response: {reason}")]
    InvalidResponse {
        /// Provider name.
        provider: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The response body broke off.
    #[error("provider {provider} broke off the response: {reason}")]
    Broken {
        /// Provider name.
        provider: String,
        /// The transport error.
        reason: String,
    },
}

impl UpstreamError {
    /// Whether trying another attempt (before the first byte went to the client) may help.
    pub fn retryable(&self) -> bool {
        match self {
            UpstreamError::Status { status, .. } => {
                matches!(
                    status.as_u16(),
                    408 | 409 | 429 | 500 | 502 | 503 | 504 | 529
                )
            }
            UpstreamError::Connect { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::CredentialRejected { .. }
            | UpstreamError::InvalidResponse { .. }
            | UpstreamError::Broken { .. } => true,
        }
    }

    /// Low-cardinality class, for logs, metrics and usage records.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Status { status, .. } if status.as_u16() == 429 => "rate_limited",
            UpstreamError::Status { status, .. } if status.is_client_error() => "upstream_4xx",
            UpstreamError::Status { .. } => "upstream_5xx",
            UpstreamError::CredentialRejected { .. } => "credential_rejected",
            UpstreamError::InvalidResponse { .. } => "invalid_response",
            UpstreamError::Broken { .. } => "stream_broken",
        }
    }

    /// The upstream HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(status.as_u16()),
            UpstreamError::CredentialRejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The HTTP(S) client every outbound call uses (providers, policy services).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A configured provider with its connection pool.
#[derive(Debug)]
pub struct Provider {
    /// Provider name.
    pub name: String,
    upstream: Box<dyn Upstream>,
    url: http::Uri,
    count_tokens_url: Option<http::Uri>,
    key: Option<Secret>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Longest wait for headers or between two body chunks.
    pub read_timeout: Duration,
    /// Largest whole response body read.
    pub max_response_bytes: usize,
    /// Largest stream event read.
    pub max_event_bytes: usize,
    scrubber: Scrubber,
    client: HttpClient,
    /// The pool's (connect timeout, idle timeout).
    pool: (Duration, Duration),
}

/// Removes a provider's own secrets — its API key, and its configured header values of eight
/// bytes or more — from upstream text relayed to callers (error bodies and error events), in
/// case a provider echoes them.
#[derive(Debug, Clone, Default)]
pub struct Scrubber(Arc<[Vec<u8>]>);

impl Scrubber {
    /// A scrubber for these secret values.
    pub fn new(secrets: Vec<Vec<u8>>) -> Self {
        Scrubber(secrets.into())
    }

    /// `text` with every secret replaced by `***`, or `None` when it holds none.
    pub fn scrub(&self, text: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for secret in self.0.iter() {
            let cur = out.as_deref().unwrap_or(text);
            if memchr::memmem::find(cur, secret).is_none() {
                continue;
            }
            let mut v = Vec::with_capacity(cur.len());
            let mut at = 0;
            for i in memchr::memmem::find_iter(cur, secret) {
                if i < at {
                    continue;
                }
                v.extend_from_slice(&cur[at..i]);
                v.extend_from_slice(b"***");
                at = i + secret.len();
            }
            v.extend_from_slice(&cur[at..]);
            out = Some(v);
        }
        out
    }
}

/// What an attempt sends besides the body.
#[derive(Debug, Clone)]
pub struct AttemptHeaders<'a> {
    /// The request id, sent as `x-request-id`.
    pub request_id: &'a str,
    /// Ask for an event stream.
    pub stream: bool,
    /// Budget left for the upstream (sent as `x-router-timeout-ms`, for upstream routers).
    pub timeout_ms: u64,
    /// This router's name (sent as `x-router-parent-id`).
    pub parent_id: &'a str,
    /// Caller headers to pass on (same-dialect protocol headers such as `anthropic-beta`).
    pub forward: &'a [(http::HeaderName, HeaderValue)],
    /// Headers a policy added (allow-listed); the provider's own headers win over them.
    pub extra: &'a [(http::HeaderName, HeaderValue)],
    /// W3C `traceparent` naming this attempt's span, and the caller's `tracestate` (telemetry on).
    pub trace: Option<(HeaderValue, Option<HeaderValue>)>,
}

/// Which of a provider's endpoints a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Generation (`/chat/completions`, `/v1/messages`, ...).
    Generate,
    /// Token counting (`/v1/messages/count_tokens`), where the kind has one.
    CountTokens,
}

/// A pooled HTTP/1 client (http and https, webpki roots) with these connect and idle timeouts.
pub fn http_client(connect_timeout: Duration, pool_idle_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // The pool needs a timer to close idle connections: without one, idle timeouts are only
    // checked when a connection is next checked out, and idle sockets linger.
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle_timeout)
        .pool_max_idle_per_host(1024)
        .build(https)
}

impl Provider {
    /// Builds the provider and its client from config.
    pub fn new(config: &ProviderConfig) -> Self {
        Self::carried(config, None)
    }

    /// The client for a reloaded `config`: `previous`'s connection pool is kept when the
    /// connection settings are the same (warm connections survive a reload); everything else
    /// (URL, key, headers, limits) comes from `config`.
    pub fn carried(config: &ProviderConfig, previous: Option<&Provider>) -> Self {
        let pool = (config.connect_timeout, config.pool_idle_timeout);
        let client = match previous.filter(|p| p.pool == pool) {
            Some(p) => p.client.clone(),
            None => Self::client(config),
        };
        let mut secrets: Vec<Vec<u8>> = config
            .headers
            .iter()
            .map(|(_, v)| v.as_bytes().to_vec())
            .filter(|v| v.len() >= 8)
            .collect();
        secrets.extend(
            config
                .api_key
                .iter()
                .map(|k| k.expose().as_bytes().to_vec()),
        );
        let upstream = upstream_for(config.kind);
        let url = format!("{}{}", config.base_url, upstream.path())
            .parse()
            .expect("validated base_url plus a static path is a URI");
        let count_tokens_url = upstream.count_tokens_path().map(|p| {
            format!("{}{p}", config.base_url)
                .parse()
                .expect("validated base_url plus a static path is a URI")
        });
        Provider {
            name: config.name.clone(),
            upstream,
            url,
            count_tokens_url,
            key: config.api_key.clone(),
            headers: config.headers.clone(),
            read_timeout: config.read_timeout,
            max_response_bytes: config.max_response_bytes,
            max_event_bytes: config.max_event_bytes,
            scrubber: Scrubber::new(secrets),
            client,
            pool,
        }
    }

    /// A connection pool with `config`'s connect and idle timeouts.
    fn client(config: &ProviderConfig) -> HttpClient {
        http_client(config.connect_timeout, config.pool_idle_timeout)
    }

    /// The dialect this provider speaks.
    pub fn dialect(&self) -> Dialect {
        self.upstream.dialect()
    }

    /// What removes this provider's secrets from relayed text.
    pub fn scrubber(&self) -> Scrubber {
        self.scrubber.clone()
    }

    /// Sends one attempt and waits for the response head. Error statuses are read whole and
    /// turned into [`UpstreamError`]s; a success returns the streaming body.
    pub async fn send(
        &self,
        body: Bytes,
        meta: AttemptHeaders<'_>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        self.send_to(Endpoint::Generate, body, meta).await
    }

    /// Whether the provider has `endpoint`.
    pub fn has(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Generate || self.count_tokens_url.is_some()
    }

    /// Like [`Provider::send`], to a chosen endpoint (which the provider must have).
    pub async fn send_to(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        meta: AttemptHeaders<'_>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let url = match endpoint {
            Endpoint::Generate => &self.url,
            Endpoint::CountTokens => self.count_tokens_url.as_ref().unwrap_or(&self.url),
        };
        let mut req = Request::post(url.clone())
            .body(Full::new(body))
            .expect("a POST to a valid URI builds");
        let h = req.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let accept = if meta.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        h.insert(http::header::ACCEPT, HeaderValue::from_static(accept));
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("smart-router/", env!("CARGO_PKG_VERSION"))),
        );
        if let Ok(v) = HeaderValue::from_str(meta.request_id) {
            h.insert(crate::header_names::X_REQUEST_ID, v);
        }
        if let Ok(v) = HeaderValue::from_str(meta.parent_id) {
            h.insert(crate::header_names::X_ROUTER_PARENT_ID, v);
        }
        h.insert(
            crate::header_names::X_ROUTER_TIMEOUT_MS,
            HeaderValue::from(meta.timeout_ms),
        );
        for (k, v) in meta.forward.iter().chain(meta.extra) {
            h.insert(k.clone(), v.clone());
        }
        if let Some((parent, state)) = meta.trace {
            h.insert(crate::telemetry::TRACEPARENT, parent);
            if let Some(s) = state {
                h.insert(crate::telemetry::TRACESTATE, s);
            }
        }
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
        self.upstream.authorize(self.key.as_ref(), h);
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| UpstreamError::Connect {
                provider: self.name.clone(),
                reason: error_chain(&e),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if matches!(status.as_u16(), 401 | 403) {
            return Err(UpstreamError::CredentialRejected {
                provider: self.name.clone(),
                status: status.as_u16(),
            });
        }
        let retry_after = retry_after(resp.headers());
        let body = read_error_body(resp.into_body()).await;
        let body = match self.scrubber.scrub(&body) {
            Some(clean) => Bytes::from(clean),
            None => body,
        };
        Err(UpstreamError::Status {
            provider: self.name.clone(),
            status,
            body,
            retry_after,
        })
    }
}

/// Reads at most 64 KiB of an error body (what is past that is not worth relaying).
async fn read_error_body(body: Incoming) -> Bytes {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// `Retry-After` as delay seconds or as an HTTP date (IMF-fixdate).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = crate::time::parse_http_date(v)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// A transport error and its causes, joined (no URL or credential is in them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_every_occurrence_of_every_secret() {
        let s = Scrubber::new(vec![
            b"sk-upstream-secret".to_vec(),
            b"org-header-value".to_vec(),
        ]);
        let text = br#"{"error":{"message":"bad key sk-upstream-secret (sk-upstream-secret) for org-header-value"}}"#;
        let clean = s.scrub(text).unwrap();
        assert_eq!(
            String::from_utf8(clean).unwrap(),
            r#"{"error":{"message":"bad key *** (***) for ***"}}"#
        );
        assert_eq!(s.scrub(b"nothing here"), None);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("2.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(2500)));
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }
}
