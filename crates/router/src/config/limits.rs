//! `[limits]`, `[[quotas]]` and `[[budgets]]`: raw (as written) and validated, every problem
//! reported with its key path.

use super::error::choice;
use super::{ConfigError, GroupConfig, suggest};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;

/// `[limits]` as written.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawLimits {
    /// `memory` or `redis://HOST:PORT/DB`.
    pub backend: String,
    /// `allow` or `deny`: what requests get while the backend is unreachable.
    pub on_backend_error: String,
    /// Replicas sharing the backend: while it is unreachable each enforces limit / this.
    pub expected_replicas: u32,
    /// Share of a limit a replica takes from the shared backend at once (0 < x <= 1).
    pub lease_fraction: f64,
    /// Output tokens assumed for a request that sets no maximum, when reserving tokens.
    pub assumed_output_tokens: u32,
    /// How long a backend call may take before it counts as failed.
    pub backend_timeout_ms: u64,
    /// Prefix of every key in the backend (several deployments can share one Redis).
    pub key_prefix: String,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            backend: "memory".into(),
            on_backend_error: "allow".into(),
            expected_replicas: 1,
            lease_fraction: 0.1,
            assumed_output_tokens: 1024,
            backend_timeout_ms: 250,
            key_prefix: "smart-router".into(),
        }
    }
}

/// Which callers share one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Each caller has its own.
    Caller,
    /// Callers of one project share one.
    Project,
    /// Callers of one team share one.
    Team,
    /// Callers of one environment share one.
    Environment,
    /// Everyone shares one.
    Global,
}

impl Scope {
    /// Every scope with its config spelling.
    pub const ALL: &'static [(&'static str, Scope)] = &[
        ("caller", Scope::Caller),
        ("project", Scope::Project),
        ("team", Scope::Team),
        ("environment", Scope::Environment),
        ("global", Scope::Global),
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("global", |(n, _)| n)
    }
}

/// Enforce, or only evaluate and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reject over the limit.
    Enforce,
    /// Evaluate and record `would_reject`; never reject.
    Shadow,
}

/// A budget's calendar period (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Midnight to midnight.
    Day,
    /// Monday to Monday.
    Week,
    /// The calendar month.
    Month,
}

/// What requests get while the limits backend is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Go on, limited per replica (limit / expected replicas).
    Allow,
    /// Refuse limited requests (503).
    Deny,
}

/// Only subjects with these attributes (all must match).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Match {
    /// Caller name.
    #[serde(default)]
    pub caller: Option<String>,
    /// Project.
    #[serde(default)]
    pub project: Option<String>,
    /// Team.
    #[serde(default)]
    pub team: Option<String>,
    /// Environment.
    #[serde(default)]
    pub environment: Option<String>,
}

/// `[[quotas]]` as written.
#[derive(Debug, Deserialize)]
pub struct RawQuota {
    /// The operator's name (records, metrics, errors).
    pub name: String,
    /// `caller` | `project` | `team` | `environment` | `global`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Groups it applies to (`*`: all).
    #[serde(default = "all_groups")]
    pub groups: Vec<String>,
    /// Only these subjects.
    #[serde(default, rename = "match")]
    pub matches: Option<Match>,
    /// Requests per calendar minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Input plus output tokens per calendar minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrent_requests: Option<u64>,
    /// `enforce` | `shadow`.
    #[serde(default = "default_mode")]
    pub mode: String,
}

/// `[[budgets]]` as written.
#[derive(Debug, Deserialize)]
pub struct RawBudget {
    /// The operator's name.
    pub name: String,
    /// `caller` | `project` | `team` | `environment` | `global`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Groups it applies to (`*`: all).
    #[serde(default = "all_groups")]
    pub groups: Vec<String>,
    /// Only these subjects.
    #[serde(default, rename = "match")]
    pub matches: Option<Match>,
    /// USD per period.
    pub usd: f64,
    /// `day` | `week` | `month`.
    #[serde(default = "default_period")]
    pub period: String,
    /// Share of the budget at which responses carry a warning header.
    #[serde(default = "default_warn_at")]
    pub warn_at: f64,
    /// `enforce` | `shadow`.
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_scope() -> String {
    "caller".into()
}
fn all_groups() -> Vec<String> {
    vec!["*".into()]
}
fn default_mode() -> String {
    "enforce".into()
}
fn default_period() -> String {
    "month".into()
}
fn default_warn_at() -> f64 {
    0.8
}

/// `[limits]`, `[[quotas]]` and `[[budgets]]`, validated.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// The shared backend, when not in memory (`redis://...`).
    pub redis_url: Option<String>,
    /// What requests get while the backend is unreachable.
    pub on_backend_error: OnBackendError,
    /// Replicas expected to share the backend.
    pub expected_replicas: u32,
    /// Share of a limit leased at once.
    pub lease_fraction: f64,
    /// Output tokens assumed when a request sets no maximum.
    pub assumed_output_tokens: u32,
    /// Longest wait for the backend.
    pub backend_timeout: Duration,
    /// Prefix of every backend key.
    pub key_prefix: String,
    /// The quotas, in file order.
    pub quotas: Vec<QuotaConfig>,
    /// The budgets, in file order.
    pub budgets: Vec<BudgetConfig>,
}

impl LimitsConfig {
    /// Whether anything is limited at all.
    pub fn is_empty(&self) -> bool {
        self.quotas.is_empty() && self.budgets.is_empty()
    }
}

/// Which requests a quota or budget counts.
#[derive(Debug, Clone)]
pub struct Applies {
    /// Who shares a counter.
    pub scope: Scope,
    /// Group names, or `None` for all.
    pub groups: Option<HashSet<String>>,
    /// Only these subjects.
    pub matches: Match,
}

/// One `[[quotas]]`, validated.
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    /// Name.
    pub name: String,
    /// Which requests it counts.
    pub applies: Applies,
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Concurrent requests.
    pub concurrent_requests: Option<u64>,
    /// Enforce or shadow.
    pub mode: Mode,
}

/// One `[[budgets]]`, validated.
#[derive(Debug, Clone)]
pub struct BudgetConfig {
    /// Name.
    pub name: String,
    /// Which requests it counts.
    pub applies: Applies,
    /// USD per period.
    pub usd: f64,
    /// The period.
    pub period: Period,
    /// Warning share.
    pub warn_at: f64,
    /// Enforce or shadow.
    pub mode: Mode,
}

const MODES: &[(&str, Mode)] = &[("enforce", Mode::Enforce), ("shadow", Mode::Shadow)];
const PERIODS: &[(&str, Period)] = &[
    ("day", Period::Day),
    ("week", Period::Week),
    ("month", Period::Month),
];

/// What `validate_limits` needs from the rest of the file.
pub(super) struct LimitsInput<'a> {
    pub(super) limits: &'a RawLimits,
    pub(super) quotas: &'a [RawQuota],
    pub(super) budgets: &'a [RawBudget],
    pub(super) group_names: &'a [&'a str],
}

/// Validates the limits sections; `groups` are the validated groups (for price warnings).
pub(super) fn validate_limits(
    input: LimitsInput<'_>,
    validated_groups: &[Option<GroupConfig>],
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> LimitsConfig {
    let l = input.limits;
    let redis_url = match l.backend.as_str() {
        "memory" => None,
        url if url.starts_with("redis://") && redis::Client::open(url).is_ok() => {
            Some(url.to_string())
        }
        other => {
            errors.push(ConfigError::InvalidValue {
                path: "limits.backend".into(),
                reason: format!(
                    "{:?} must be \"memory\" or a redis://HOST:PORT/DB URL",
                    crate::bounds::clip(other, 64)
                ),
            });
            None
        }
    };
    const ON_ERROR: &[(&str, OnBackendError)] = &[
        ("allow", OnBackendError::Allow),
        ("deny", OnBackendError::Deny),
    ];
    let on_backend_error = choice(
        errors,
        "limits.on_backend_error".into(),
        &l.on_backend_error,
        ON_ERROR,
    )
    .unwrap_or(OnBackendError::Allow);
    if l.expected_replicas == 0 {
        errors.push(ConfigError::InvalidValue {
            path: "limits.expected_replicas".into(),
            reason: "must be at least 1".into(),
        });
    }
    if !(l.lease_fraction > 0.0 && l.lease_fraction <= 1.0) {
        errors.push(ConfigError::InvalidValue {
            path: "limits.lease_fraction".into(),
            reason: "must be greater than 0 and at most 1".into(),
        });
    }
    let group_names = input.group_names;
    let mut names = HashSet::new();
    let quotas = input
        .quotas
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let path = format!("quotas[{i}]");
            unique_name(&path, "quota or budget", &q.name, &mut names, errors);
            let applies = applies(&path, &q.scope, &q.groups, &q.matches, group_names, errors);
            let mode = choice(errors, format!("{path}.mode"), &q.mode, MODES);
            let limits = [
                ("requests_per_minute", q.requests_per_minute),
                ("tokens_per_minute", q.tokens_per_minute),
                ("concurrent_requests", q.concurrent_requests),
            ];
            for (key, v) in limits {
                if v == Some(0) {
                    errors.push(ConfigError::InvalidValue {
                        path: format!("{path}.{key}"),
                        reason: "must be at least 1 (leave it out for no limit)".into(),
                    });
                }
            }
            if limits.iter().all(|(_, v)| v.is_none()) {
                errors.push(ConfigError::InvalidValue {
                    path: path.clone(),
                    reason: "sets no limit (requests_per_minute, tokens_per_minute or concurrent_requests)".into(),
                });
            }
            Some(QuotaConfig {
                name: q.name.clone(),
                applies: applies?,
                requests_per_minute: q.requests_per_minute,
                tokens_per_minute: q.tokens_per_minute,
                concurrent_requests: q.concurrent_requests,
                mode: mode?,
            })
        })
        .collect();
    let budgets = input
        .budgets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let path = format!("budgets[{i}]");
            unique_name(&path, "quota or budget", &b.name, &mut names, errors);
            let applies = applies(&path, &b.scope, &b.groups, &b.matches, group_names, errors);
            let mode = choice(errors, format!("{path}.mode"), &b.mode, MODES);
            let period = choice(errors, format!("{path}.period"), &b.period, PERIODS);
            if !(b.usd.is_finite() && b.usd > 0.0) {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.usd"),
                    reason: "must be a positive amount".into(),
                });
            }
            if !(b.warn_at > 0.0 && b.warn_at <= 1.0) {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.warn_at"),
                    reason: "must be greater than 0 and at most 1".into(),
                });
            }
            let applies = applies?;
            warn_unpriced(&path, &applies, validated_groups, warnings);
            Some(BudgetConfig {
                name: b.name.clone(),
                applies,
                usd: b.usd,
                period: period?,
                warn_at: b.warn_at,
                mode: mode?,
            })
        })
        .collect();
    LimitsConfig {
        redis_url,
        on_backend_error,
        expected_replicas: l.expected_replicas.max(1),
        lease_fraction: l.lease_fraction.clamp(f64::MIN_POSITIVE, 1.0),
        assumed_output_tokens: l.assumed_output_tokens,
        backend_timeout: Duration::from_millis(l.backend_timeout_ms.max(1)),
        key_prefix: l.key_prefix.clone(),
        quotas,
        budgets,
    }
}

/// Checks the `name` of a named section at `path` (quota, budget, policy): 1 to 64 safe
/// characters, unique among `names`; `what` names the kind in the duplicate error.
pub(super) fn unique_name<'a>(
    path: &str,
    what: &'static str,
    name: &'a str,
    names: &mut HashSet<&'a str>,
    errors: &mut Vec<ConfigError>,
) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.name"),
            reason: "must be 1 to 64 letters, digits, '-', '_' or '.'".into(),
        });
    } else if !names.insert(name) {
        errors.push(ConfigError::Duplicate {
            path: format!("{path}.name"),
            what,
            name: name.to_string(),
        });
    }
}

fn applies(
    path: &str,
    scope: &str,
    groups: &[String],
    matches: &Option<Match>,
    group_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<Applies> {
    let scope = choice(errors, format!("{path}.scope"), scope, Scope::ALL);
    let mut set = HashSet::new();
    let mut all = false;
    for (j, g) in groups.iter().enumerate() {
        if g == "*" {
            all = true;
        } else if group_names.contains(&g.as_str()) {
            set.insert(g.clone());
        } else {
            errors.push(ConfigError::UnknownName {
                path: format!("{path}.groups[{j}]"),
                what: "group",
                name: g.clone(),
                suggestion: suggest(g, group_names.iter().copied()),
            });
        }
    }
    if groups.is_empty() {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.groups"),
            reason: "names no group (use [\"*\"] for all)".into(),
        });
    }
    Some(Applies {
        scope: scope?,
        groups: (!all).then_some(set),
        matches: matches.clone().unwrap_or_default(),
    })
}

/// A budget on groups whose targets have no prices would never be charged: warn.
fn warn_unpriced(
    path: &str,
    applies: &Applies,
    groups: &[Option<GroupConfig>],
    warnings: &mut Vec<String>,
) {
    for g in groups.iter().flatten() {
        let counted = applies.groups.as_ref().is_none_or(|s| s.contains(&g.name));
        if counted && g.targets.iter().any(|t| t.price.is_none()) {
            warnings.push(format!(
                "{path}: group {:?} has targets without a price; their requests cost nothing against the budget",
                g.name
            ));
        }
    }
}
