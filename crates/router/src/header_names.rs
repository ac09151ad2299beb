//! Names of the headers the router sets on every request and response, made once: inserting
//! with a `&str` name parses and validates it on each call.

use http::HeaderName;

/// `x-request-id` (upstream requests and responses).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-router-parent-id`: this router's name, sent upstream.
pub const X_ROUTER_PARENT_ID: HeaderName = HeaderName::from_static("x-router-parent-id");
/// `x-router-timeout-ms`: the budget left, sent upstream.
pub const X_ROUTER_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-router-timeout-ms");
/// `x-router-overhead-ms` on responses.
pub const X_ROUTER_OVERHEAD_MS: HeaderName = HeaderName::from_static("x-router-overhead-ms");
/// `x-router-group` on responses.
pub const X_ROUTER_GROUP: HeaderName = HeaderName::from_static("x-router-group");
/// `x-router-target` on responses.
pub const X_ROUTER_TARGET: HeaderName = HeaderName::from_static("x-router-target");
/// `x-router-attempts` on responses.
pub const X_ROUTER_ATTEMPTS: HeaderName = HeaderName::from_static("x-router-attempts");
/// `x-api-key` (Anthropic's credential header).
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// `anthropic-version`.
pub const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
