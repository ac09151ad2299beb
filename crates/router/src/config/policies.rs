//! `[[policies]]`: external policy services (OPA's Data API), as written and validated.

use super::ConfigError;
use super::error::choice;
use super::pii::{AppliesTo, RawAppliesTo, validate_applies};
use super::rules::{MODES, default_mode};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// `[[policies]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// The operator's name.
    pub name: String,
    /// Where decisions are asked: `POST {"input": ...}` -> `{"result": ...}`.
    pub url: String,
    /// Which requests it is asked about.
    #[serde(default)]
    pub applies_to: RawAppliesTo,
    /// Longest wait for a decision.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// `allow` | `deny`: what a timeout, a connection error or a bad answer means. Required:
    /// failing open or closed is the operator's explicit choice.
    pub on_error: String,
    /// `enforce` | `shadow`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Keep decisions this long, keyed by (caller, group, client, surface); 0: no cache.
    #[serde(default)]
    pub cache_ttl_ms: u64,
    /// Send the request's text too (only where a capture policy also applies).
    #[serde(default)]
    pub send_content: bool,
    /// Headers sent to the policy service (`env:NAME`, `file:/path` or inline values).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request headers the policy may add for the upstream; others it asks for are dropped.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker skips the service (then one call tries it again).
    #[serde(default = "default_breaker_open")]
    pub breaker_open_ms: u64,
}

fn default_timeout() -> u64 {
    50
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open() -> u64 {
    10_000
}

/// What a policy that gives no usable decision means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOnError {
    /// Fail open: the request goes on.
    Allow,
    /// Fail closed: the request is refused.
    Deny,
}

/// One validated policy.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// The operator's name.
    pub name: Arc<str>,
    /// The decision URL.
    pub url: http::Uri,
    /// Which requests it is asked about.
    pub applies: AppliesTo,
    /// Longest wait.
    pub timeout: Duration,
    /// Fail open or closed.
    pub on_error: PolicyOnError,
    /// Asked and recorded, but its decision changes nothing.
    pub shadow: bool,
    /// Decision cache TTL (zero: none).
    pub cache_ttl: Duration,
    /// Send request text (where a capture policy applies too).
    pub send_content: bool,
    /// Headers for the policy service (values marked sensitive).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Headers the policy may add upstream.
    pub allow_headers: Vec<http::HeaderName>,
    /// Failures in a row that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open.
    pub breaker_open: Duration,
}

impl PolicyConfig {
    /// The service's URL as it may be shown (summaries, `explain`): scheme, host, port and
    /// path, never user information or a query that could carry a credential.
    pub fn shown_url(&self) -> String {
        format!(
            "{}://{}{}",
            self.url.scheme_str().unwrap_or("http"),
            self.url
                .authority()
                .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or("")),
            self.url.path()
        )
    }
}

/// Validates `[[policies]]`.
pub(super) fn validate_policies(
    raw: &[RawPolicy],
    group_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<PolicyConfig> {
    const ON_ERROR: &[(&str, PolicyOnError)] = &[
        ("allow", PolicyOnError::Allow),
        ("deny", PolicyOnError::Deny),
    ];
    let mut names = HashSet::new();
    raw.iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let path = format!("policies[{i}]");
            super::limits::unique_name(&path, "policy", &p.name, &mut names, errors);
            let applies = validate_applies(&path, &p.applies_to, group_names, errors);
            let url = match p.url.parse::<http::Uri>() {
                Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => Some(u),
                Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => Some(u),
                _ => {
                    errors.push(ConfigError::InvalidValue {
                        path: format!("{path}.url"),
                        reason: "is not an http:// or https:// URL".into(),
                    });
                    None
                }
            };
            if p.timeout_ms == 0 || p.timeout_ms > 60_000 {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.timeout_ms"),
                    reason: "must be 1 to 60000".into(),
                });
            }
            if p.breaker_failures == 0 {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.breaker_failures"),
                    reason: "must be at least 1".into(),
                });
            }
            let on_error = choice(errors, format!("{path}.on_error"), &p.on_error, ON_ERROR);
            let shadow = choice(errors, format!("{path}.mode"), &p.mode, MODES);
            let headers = super::headers::secret_headers(&path, &p.headers, errors);
            let mut allow_headers = Vec::new();
            for (j, h) in p.allow_headers.iter().enumerate() {
                match http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                    Ok(n) if !FORBIDDEN_UPSTREAM.contains(&n.as_str()) => allow_headers.push(n),
                    _ => errors.push(ConfigError::InvalidValue {
                        path: format!("{path}.allow_headers[{j}]"),
                        reason: format!(
                            "{:?} is not a header a policy may set (credentials, hop and framing headers are the router's)",
                            crate::bounds::clip(h, 64)
                        ),
                    }),
                }
            }
            Some(PolicyConfig {
                name: p.name.as_str().into(),
                url: url?,
                applies,
                timeout: Duration::from_millis(p.timeout_ms.clamp(1, 60_000)),
                on_error: on_error?,
                shadow: shadow?,
                cache_ttl: Duration::from_millis(p.cache_ttl_ms),
                send_content: p.send_content,
                headers,
                allow_headers,
                breaker_failures: p.breaker_failures.max(1),
                breaker_open: Duration::from_millis(p.breaker_open_ms),
            })
        })
        .collect()
}

/// Headers no policy may set upstream: credentials, framing, hop-by-hop and the router's own.
const FORBIDDEN_UPSTREAM: &[&str] = &[
    "authorization",
    "x-api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "accept",
    "x-request-id",
    "x-router-parent-id",
    "x-router-timeout-ms",
];
