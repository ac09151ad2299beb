//! Caller authentication: router tokens (never provider keys) mapped to callers by their
//! SHA-256, compared in constant time.

mod sessions;

pub use sessions::Sessions;

use crate::config::{CallerConfig, Config, Roles, hash_token};
use crate::error::Error;
use http::HeaderMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// An authenticated caller.
#[derive(Debug)]
pub struct Caller {
    /// Position in the config's `callers` (indexes per-caller tables built at load).
    pub index: usize,
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
    callers: Vec<Arc<Caller>>,
}

impl Authenticator {
    /// Builds the table from a validated config.
    pub fn new(config: &Config) -> Self {
        let entries: Vec<([u8; 32], Arc<Caller>)> = config
            .callers
            .iter()
            .enumerate()
            .map(|(index, c): (usize, &CallerConfig)| {
                let caller = Caller {
                    index,
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
        let callers = entries.iter().map(|(_, c)| c.clone()).collect();
        Authenticator { entries, callers }
    }

    /// Every caller, in config order.
    pub fn callers(&self) -> &[Arc<Caller>] {
        &self.callers
    }

    /// The caller presenting a token that holds any of `roles` (admin holds them all):
    /// 401 without a known token, 403 without the role.
    pub fn require(&self, headers: &HeaderMap, roles: &[Role]) -> Result<Arc<Caller>, Error> {
        let caller = self.authenticate(headers).map_err(|f| match f {
            AuthFailure::Missing => Error::MissingToken,
            AuthFailure::Unknown => Error::InvalidToken,
        })?;
        if roles.iter().any(|r| caller.has(*r)) {
            Ok(caller)
        } else {
            Err(Error::Forbidden {
                role: roles.first().map_or("admin", |r| r.as_str()),
            })
        }
    }

    /// The caller presenting the token in `headers`. Every entry is compared, in constant time.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, AuthFailure> {
        let token = presented_token(headers).ok_or(AuthFailure::Missing)?;
        self.by_hash(&hash_token(token)).ok_or(AuthFailure::Unknown)
    }

    /// The caller whose token has this SHA-256 (a console session keeps the hash, never the
    /// token, and is checked again on every page: a token removed by a reload ends it). Every
    /// entry is compared, in constant time.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<Arc<Caller>> {
        let mut found = None;
        for (h, caller) in &self.entries {
            if bool::from(h.ct_eq(hash)) {
                found = Some(caller);
            }
        }
        found.cloned()
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
            crate::config::hash_token_hex("demo"),
            "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"
        );
    }
}
