//! `[[callers]]` validated: names, roles, allowed groups, and each token's hash (from
//! `token_sha256`, or a plain `token` reference hashed at load).

use super::error::choice;
use super::raw::RawCaller;
use super::*;
use std::collections::HashMap;

pub(super) fn validate_callers(
    raw: &[RawCaller],
    groups: &[&str],
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<CallerConfig> {
    const ROLES: &[(&str, u8)] = &[
        ("caller", 0),
        ("metrics-admin", 1),
        ("report-admin", 2),
        ("admin", 3),
    ];
    let mut out = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut hashes: HashMap<[u8; 32], usize> = HashMap::new();
    for (i, c) in raw.iter().enumerate() {
        let path = format!("callers[{i}]");
        if c.name.trim().is_empty() {
            errors.push(ConfigError::InvalidValue {
                path: format!("{path}.name"),
                reason: "must not be empty".into(),
            });
        } else if names.insert(c.name.as_str(), i).is_some() {
            errors.push(ConfigError::Duplicate {
                path: format!("{path}.name"),
                what: "caller",
                name: c.name.clone(),
            });
        }
        let mut roles = Roles::default();
        for (j, r) in c.roles.iter().enumerate() {
            match choice(errors, format!("{path}.roles[{j}]"), r, ROLES) {
                Some(0) => roles.caller = true,
                Some(1) => roles.metrics_admin = true,
                Some(2) => roles.report_admin = true,
                Some(_) => roles.admin = true,
                None => {}
            }
        }
        for (j, g) in c.groups.iter().enumerate() {
            if g != "*" && !groups.contains(&g.as_str()) {
                errors.push(ConfigError::UnknownName {
                    path: format!("{path}.groups[{j}]"),
                    what: "group",
                    name: g.clone(),
                    suggestion: suggest(g, groups.iter().copied()),
                });
            }
        }
        let hash = caller_token_hash(&path, c, errors, warnings);
        if let Some(h) = hash {
            if let Some(other) = hashes.insert(h, i) {
                errors.push(ConfigError::DuplicateToken { path, other });
            }
        }
        if let Some(token_sha256) = hash {
            out.push(CallerConfig {
                name: c.name.clone(),
                project: c.project.clone(),
                team: c.team.clone(),
                environment: c.environment.clone(),
                roles,
                groups: c.groups.clone(),
                token_sha256,
            });
        }
    }
    out
}

fn caller_token_hash(
    path: &str,
    c: &RawCaller,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<[u8; 32]> {
    match (&c.token_sha256, &c.token) {
        (Some(h), None) => {
            let parsed = parse_hex32(h);
            if parsed.is_none() {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.token_sha256"),
                    reason: "must be 64 hex characters (from `smart-router hash-token`)".into(),
                });
            }
            parsed
        }
        (None, Some(t)) => match resolve_secret(t) {
            Ok((secret, source)) => {
                if source == SecretSource::Inline {
                    warnings.push(format!(
                        "{path}.token: written inline; use token_sha256, env:NAME or file:/path"
                    ));
                }
                Some(hash_token(secret.expose()))
            }
            Err(source) => {
                errors.push(ConfigError::Secret {
                    path: format!("{path}.token"),
                    source,
                });
                None
            }
        },
        _ => {
            errors.push(ConfigError::InvalidValue {
                path: path.to_string(),
                reason: "set exactly one of token_sha256 and token".into(),
            });
            None
        }
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
