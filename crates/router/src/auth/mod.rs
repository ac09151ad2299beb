//! Caller authentication: router tokens (never provider keys) mapped to callers by their
//! SHA-256, compared in constant time.

use crate::config::{CallerConfig, Config, Roles};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// SHA-256 of a token, as stored in `token_sha256`.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex form of [`hash_token`], as `smart-router hash-token` prints it.
pub fn hash_token_hex(token: &str) -> String {
    crate::config::hex(&hash_token(token))
}

/// An authenticated caller.
#[derive(Debug)]
pub struct Caller {
    /// Name.
    pub name: String,
    /// Project.
    pub project: Option<String>,
    /// Team.
    pub team: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Roles.
    pub roles: Roles,
    all_groups: bool,
    groups: Vec<String>,
}

/// A role a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Model traffic.
    Caller,
    /// `/metrics`.
    MetricsAdmin,
    /// Reports.
    ReportAdmin,
    /// Everything.
    Admin,
}

impl Role {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::MetricsAdmin => "metrics-admin",
            Role::ReportAdmin => "report-admin",
            Role::Admin => "admin",
        }
    }
}

impl Caller {
    /// Whether the caller holds `role` (admin holds every role).
    pub fn has(&self, role: Role) -> bool {
        let r = self.roles;
        r.admin
            || match role {
                Role::Caller => r.caller,
                Role::MetricsAdmin => r.metrics_admin,
                Role::ReportAdmin => r.report_admin,
                Role::Admin => false,
            }
    }

    /// Whether the caller may use the model group `group`.
    pub fn may_use(&self, group: &str) -> bool {
        self.all_groups || self.groups.iter().any(|g| g == group)
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` or `x-api-key`.
    Missing,
    /// A token that matches no caller.
    Unknown,
}

/// Maps tokens to callers.
#[derive(Debug)]
pub struct Authenticator {
    entries: Vec<([u8; 32], Arc<Caller>)>,
}

impl Authenticator {
    /// Builds the table from a validated config.
    pub fn new(config: &Config) -> Self {
        let entries = config
            .callers
            .iter()
            .map(|c: &CallerConfig| {
                let caller = Caller {
                    name: c.name.clone(),
                    project: c.project.clone(),
                    team: c.team.clone(),
                    environment: c.environment.clone(),
                    roles: c.roles,
                    all_groups: c.groups.iter().any(|g| g == "*"),
                    groups: c.groups.clone(),
                };
                (c.token_sha256, Arc::new(caller))
            })
            .collect();
        Authenticator { entries }
    }

    /// The caller presenting the token in `headers`. Every entry is compared, in constant time.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, AuthFailure> {
        let token = presented_token(headers).ok_or(AuthFailure::Missing)?;
        let hash = hash_token(token);
        let mut found = None;
        for (h, caller) in &self.entries {
            if bool::from(h.ct_eq(&hash)) {
                found = Some(caller);
            }
        }
        found.cloned().ok_or(AuthFailure::Unknown)
    }
}

/// The token from `Authorization: Bearer` or `x-api-key`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_api_key() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer  abc ".parse().unwrap());
        assert_eq!(presented_token(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k".parse().unwrap());
        assert_eq!(presented_token(&h), Some("k"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_token(&h), None);
        assert_eq!(
            hash_token_hex("demo"),
            "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"
        );
    }
}
