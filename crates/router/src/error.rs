//! The router's errors, and the one place that turns them into a response in the caller's
//! dialect.

use crate::upstream::UpstreamError;
use axum::body::Body;
use axum::response::Response;
use dialects::{DecodeError, Dialect, translate};
use http::{HeaderValue, StatusCode};
use std::time::Duration;

/// A refusal, independent of any dialect: the surface encodes it in the caller's shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    /// HTTP status (403, 429, 400, ...).
    pub status: u16,
    /// Machine-readable code (`policy_denied`, `rate_limit_exceeded`, ...).
    pub code: &'static str,
    /// Low-cardinality class for metrics and records.
    pub kind: &'static str,
    /// What the caller is told (never content, never another caller's data).
    pub message: String,
    /// When to try again, for rate limits.
    pub retry_after: Option<Duration>,
}

/// Everything that can fail a request, with the data to explain it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token was presented.
    #[error(
        "You didn't provide an API key. Pass your router token as 'Authorization: Bearer <token>' or 'x-api-key: <token>'."
    )]
    MissingToken,
    /// The token matches no caller.
    #[error("Incorrect API key provided.")]
    InvalidToken,
    /// The token lacks the role the endpoint needs.
    #[error("This token does not have the '{role}' role needed for this endpoint.")]
    Forbidden {
        /// The role needed.
        role: &'static str,
    },
    /// The endpoint belongs to a feature the license does not include.
    #[error(
        "This endpoint needs the license feature \"{feature}\", which license {license_id} does not include."
    )]
    FeatureNotLicensed {
        /// The feature.
        feature: &'static str,
        /// The license in force.
        license_id: String,
    },
    /// Unknown group, or one the caller may not use (the two look the same).
    #[error("The model `{group}` does not exist or you do not have access to it.")]
    ModelNotFound {
        /// The group asked for.
        group: String,
    },
    /// The body could not be decoded.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The declared media type is not JSON.
    #[error("Content-Type {media_type:?} is not supported; send application/json.")]
    UnsupportedMediaType {
        /// The media type sent (cut to a bound).
        media_type: String,
    },
    /// The body is compressed (or otherwise encoded) in a way the router does not read.
    #[error("Content-Encoding {encoding:?} is not supported; send the body uncompressed.")]
    UnsupportedEncoding {
        /// The encoding sent (cut to a bound).
        encoding: String,
    },
    /// A governance stage refused the request.
    #[error("{0}")]
    Denied(Denial),
    /// A query parameter of an operator endpoint is wrong.
    #[error("{reason}")]
    InvalidQuery {
        /// What is wrong.
        reason: String,
    },
    /// An operator endpoint found nothing.
    #[error("{what}")]
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The usage store is not configured or does not answer.
    #[error("the usage store is unavailable")]
    StoreUnavailable,
    /// The body is over `server.max_body_bytes`.
    #[error("Request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body could not be read from the client.
    #[error("Could not read the request body: {reason}")]
    BodyRead {
        /// The transport error.
        reason: String,
    },
    /// No target of the group can take this request.
    #[error("No eligible target in group `{group}`: {reasons}")]
    NoEligibleTarget {
        /// The group.
        group: String,
        /// Why each target was excluded.
        reasons: String,
        /// Set when capable targets exist but all cool down: how long until one is back.
        retry_after: Option<Duration>,
    },
    /// The last attempt's failure, after every allowed attempt.
    #[error("{0}")]
    Upstream(UpstreamError),
    /// The request's budget ran out.
    #[error("The request's time budget of {budget_ms} ms ran out before an upstream answered.")]
    DeadlineExceeded {
        /// The budget.
        budget_ms: u64,
    },
    /// No such endpoint.
    #[error("Invalid URL ({method} {path})")]
    UnknownRoute {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// Known endpoint, wrong method.
    #[error("Method {method} is not allowed for {path}")]
    MethodNotAllowed {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// A WebSocket upgrade the router does not offer.
    #[error(
        "This router serves /v1/responses over HTTP streaming only; WebSocket is not supported. Set supports_websockets = false for this provider."
    )]
    UpgradeRequired,
    /// A bug: a handler panicked.
    #[error("The router hit an internal error; the request id identifies it in the logs.")]
    Internal,
}

impl Error {
    /// The HTTP status for the caller.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MissingToken | Error::InvalidToken => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } | Error::FeatureNotLicensed { .. } => StatusCode::FORBIDDEN,
            Error::ModelNotFound { .. } | Error::UnknownRoute { .. } | Error::NotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            Error::UnsupportedMediaType { .. } | Error::UnsupportedEncoding { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::Denied(d) => StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN),
            Error::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            Error::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::NoEligibleTarget {
                retry_after: Some(_),
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Decode(_) | Error::BodyRead { .. } | Error::NoEligibleTarget { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            Error::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Upstream(e) => match e {
                UpstreamError::Status { status, .. } if !e.retryable() => *status,
                UpstreamError::Status { status, .. } => match status.as_u16() {
                    429 => StatusCode::TOO_MANY_REQUESTS,
                    503 | 529 => StatusCode::SERVICE_UNAVAILABLE,
                    504 => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                },
                UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Low-cardinality class, for logs, metrics and usage records.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MissingToken => "missing_token",
            Error::InvalidToken => "invalid_token",
            Error::Forbidden { .. } => "forbidden",
            Error::FeatureNotLicensed { .. } => "feature_not_licensed",
            Error::ModelNotFound { .. } => "model_not_found",
            Error::Decode(_) => "invalid_request",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::BodyRead { .. } => "body_read",
            Error::NoEligibleTarget { .. } => "no_eligible_target",
            Error::Upstream(e) => e.kind(),
            Error::DeadlineExceeded { .. } => "deadline_exceeded",
            Error::UnknownRoute { .. } => "unknown_route",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::UpgradeRequired => "websocket_unsupported",
            Error::Internal => "internal",
            Error::UnsupportedMediaType { .. } => "unsupported_media_type",
            Error::UnsupportedEncoding { .. } => "unsupported_encoding",
            Error::Denied(d) => d.kind,
            Error::InvalidQuery { .. } => "invalid_query",
            Error::NotFound { .. } => "not_found",
            Error::StoreUnavailable => "store_unavailable",
        }
    }

    /// The machine-readable `code` for the caller.
    fn code(&self) -> Option<&'static str> {
        Some(match self {
            Error::MissingToken => "missing_api_key",
            Error::InvalidToken => "invalid_api_key",
            Error::Forbidden { .. } => "permission_denied",
            Error::FeatureNotLicensed { .. } => "feature_not_licensed",
            Error::ModelNotFound { .. } => "model_not_found",
            Error::BodyTooLarge { .. } => "request_too_large",
            Error::NoEligibleTarget { .. } => "no_eligible_target",
            Error::DeadlineExceeded { .. } => "deadline_exceeded",
            Error::Upstream(UpstreamError::CredentialRejected { .. }) => {
                "upstream_credential_rejected"
            }
            Error::Upstream(e) if e.retryable() => "upstream_error",
            Error::UnknownRoute { .. } => "unknown_url",
            Error::UnsupportedMediaType { .. } | Error::UnsupportedEncoding { .. } => {
                "unsupported_media_type"
            }
            Error::Denied(d) => d.code,
            Error::InvalidQuery { .. } => "invalid_query",
            Error::NotFound { .. } => "not_found",
            Error::StoreUnavailable => "store_unavailable",
            _ => return None,
        })
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Error::Decode(d) => d.field(),
            Error::ModelNotFound { .. } => Some("model"),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Upstream(UpstreamError::Status { retry_after, .. })
            | Error::NoEligibleTarget { retry_after, .. } => *retry_after,
            Error::Denied(d) => d.retry_after,
            _ => None,
        }
    }

    /// The response for a caller speaking `dialect`.
    pub fn into_response(self, dialect: Dialect) -> Response {
        let (status, body) = self.encoded(dialect);
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(ra) = self.retry_after() {
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                h.insert(http::header::RETRY_AFTER, v);
            }
        }
        resp
    }

    /// The status and error body a caller speaking `dialect` receives.
    pub fn encoded(&self, dialect: Dialect) -> (u16, Vec<u8>) {
        let status = self.status().as_u16();
        match self {
            // An upstream's own rejection of the request goes back unchanged when it is
            // already in the caller's shape; otherwise its message is rewrapped.
            Error::Upstream(UpstreamError::Status { body, provider, .. })
                if !self.retryable_upstream() =>
            {
                if translate::is_error_body(dialect, body) {
                    (status, body.to_vec())
                } else {
                    let msg = translate::error_message(body).unwrap_or_else(|| {
                        format!("provider {provider} rejected the request (HTTP {status})")
                    });
                    translate::encode_error(dialect, status, &msg, None, None)
                }
            }
            _ => translate::encode_error(
                dialect,
                status,
                &self.to_string(),
                self.param(),
                self.code(),
            ),
        }
    }

    fn retryable_upstream(&self) -> bool {
        matches!(self, Error::Upstream(e) if e.retryable())
    }

    /// The final SSE event for this error once a stream has begun.
    pub fn stream_event(&self, dialect: Dialect) -> bytes::Bytes {
        translate::encode_stream_error(
            dialect,
            self.status().as_u16(),
            &self.to_string(),
            self.code(),
        )
    }
}
