//! `[[groups.NAME.rules]]` and `rules_headers`: routing rules as written, and validated (CEL
//! compiled and type-checked, routes resolved), every problem reported with its key path.

use super::error::choice;
use super::{ConfigError, suggest};
use crate::rules::{Expression, Schema};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;

/// `[[groups.NAME.rules]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The operator's name (records, metrics, reports).
    pub name: String,
    /// A CEL condition over the rule variables.
    pub when: String,
    /// Where a matching request goes.
    pub route: RawRoute,
    /// `skip` | `deny`: what an expression that cannot be evaluated means.
    #[serde(default = "default_on_error")]
    pub on_error: String,
    /// `enforce` | `shadow`.
    #[serde(default = "default_mode")]
    pub mode: String,
}

/// `route = { targets = [...] }`, `{ group = "..." }` or `{ deny = "..." }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Targets as `provider/model`, tried in this order.
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// Another group.
    #[serde(default)]
    pub group: Option<String>,
    /// Refuse, with this reason shown to the caller.
    #[serde(default)]
    pub deny: Option<String>,
}

fn default_on_error() -> String {
    "skip".into()
}
pub(super) fn default_mode() -> String {
    "enforce".into()
}

/// A target of some group, by position (group index in `Config::groups`, target index in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRef {
    /// Group index.
    pub group: usize,
    /// Target index within the group.
    pub target: usize,
}

/// Where a rule or a policy sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// These targets, in order (the group's fallback groups are not tried).
    Targets(Arc<[TargetRef]>),
    /// Another group (with its strategy and fallbacks).
    Group(usize),
    /// Refused with this reason.
    Deny(Arc<str>),
}

/// What a rule whose expression cannot be evaluated does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOnError {
    /// The rule is ignored (counted); the next rule is tried.
    Skip,
    /// The request is refused.
    Deny,
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// The operator's name.
    pub name: Arc<str>,
    /// The compiled condition.
    pub when: Arc<Expression>,
    /// The condition as written (for `explain`).
    pub source: Arc<str>,
    /// Where a match goes.
    pub route: Route,
    /// What an evaluation error does.
    pub on_error: RuleOnError,
    /// Evaluated and recorded, but the route is not taken.
    pub shadow: bool,
}

/// A group's name and targets as written (`provider`, `model`), in file (name) order.
pub(super) struct GroupTargets<'a> {
    /// The group's name.
    pub name: &'a str,
    /// Its targets.
    pub targets: Vec<(&'a str, &'a str)>,
}

/// Enforce or shadow (rules and policies).
pub(super) const MODES: &[(&str, bool)] = &[("enforce", false), ("shadow", true)];

/// Every target of the file as `provider/model` with its first position, and the schema rules
/// are checked against. Group indices are positions in the file's (sorted) group names, which
/// is what they are once the configuration is valid.
pub(super) fn schema(
    groups: &[GroupTargets<'_>],
    rules_headers: &[String],
    errors: &mut Vec<ConfigError>,
) -> (Schema, Vec<TargetRef>, Vec<Vec<usize>>) {
    let mut headers = Vec::new();
    for (i, h) in rules_headers.iter().enumerate() {
        let lower = h.to_ascii_lowercase();
        let sensitive = [
            "authorization",
            "x-api-key",
            "cookie",
            "proxy-authorization",
        ];
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            errors.push(ConfigError::InvalidValue {
                path: format!("rules_headers[{i}]"),
                reason: format!("{:?} is not a header name", crate::bounds::clip(h, 64)),
            });
        } else if sensitive.contains(&lower.as_str()) {
            errors.push(ConfigError::InvalidValue {
                path: format!("rules_headers[{i}]"),
                reason: format!("{lower} carries credentials; rules and policies never see it"),
            });
        } else if !headers.contains(&lower) {
            headers.push(lower);
        }
    }
    let mut targets: Vec<(String, usize)> = Vec::new();
    let mut refs = Vec::new();
    let mut per_group = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let mut mine = Vec::new();
        for (ti, (provider, model)) in g.targets.iter().enumerate() {
            let label = format!("{provider}/{model}");
            let i = match targets.iter().position(|(l, _)| *l == label) {
                Some(i) => i,
                None => {
                    targets.push((label, refs.len()));
                    refs.push(TargetRef {
                        group: gi,
                        target: ti,
                    });
                    refs.len() - 1
                }
            };
            mine.push(i);
        }
        per_group.push(mine);
    }
    (Schema { headers, targets }, refs, per_group)
}

/// Validates one group's rules.
pub(super) fn validate_rules(
    group: &str,
    raw: &[RawRule],
    groups: &[GroupTargets<'_>],
    schema: &Schema,
    errors: &mut Vec<ConfigError>,
) -> Vec<RuleConfig> {
    const ON_ERROR: &[(&str, RuleOnError)] =
        &[("skip", RuleOnError::Skip), ("deny", RuleOnError::Deny)];
    let own = groups.iter().position(|g| g.name == group);
    let mut names = HashSet::new();
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let path = format!("groups.{group}.rules[{i}]");
            super::limits::unique_name(&path, "rule", &r.name, &mut names, errors);
            let when = match crate::rules::compile(&r.when, schema) {
                Ok(e) => Some(e),
                Err(reason) => {
                    errors.push(ConfigError::InvalidValue {
                        path: format!("{path}.when"),
                        reason,
                    });
                    None
                }
            };
            let route = validate_route(&format!("{path}.route"), &r.route, own, groups, errors);
            let on_error = choice(errors, format!("{path}.on_error"), &r.on_error, ON_ERROR);
            let shadow = choice(errors, format!("{path}.mode"), &r.mode, MODES);
            Some(RuleConfig {
                name: r.name.as_str().into(),
                when: Arc::new(when?),
                source: r.when.as_str().into(),
                route: route?,
                on_error: on_error?,
                shadow: shadow?,
            })
        })
        .collect()
}

/// Resolves a route; `own` is the group the rule belongs to (its targets are preferred).
fn validate_route(
    path: &str,
    r: &RawRoute,
    own: Option<usize>,
    groups: &[GroupTargets<'_>],
    errors: &mut Vec<ConfigError>,
) -> Option<Route> {
    let given = [r.targets.is_some(), r.group.is_some(), r.deny.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        errors.push(ConfigError::InvalidValue {
            path: path.to_string(),
            reason: "give exactly one of targets, group or deny".into(),
        });
        return None;
    }
    if let Some(reason) = &r.deny {
        if reason.trim().is_empty() || reason.len() > 512 {
            errors.push(ConfigError::InvalidValue {
                path: format!("{path}.deny"),
                reason: "the reason shown to callers must be 1 to 512 bytes".into(),
            });
            return None;
        }
        return Some(Route::Deny(reason.as_str().into()));
    }
    let group_names: Vec<&str> = groups.iter().map(|g| g.name).collect();
    if let Some(g) = &r.group {
        return match group_names.iter().position(|n| n == g) {
            Some(gi) if Some(gi) == own => {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.group"),
                    reason: "routes to its own group (leave the rule out instead)".into(),
                });
                None
            }
            Some(gi) => Some(Route::Group(gi)),
            None => {
                errors.push(ConfigError::UnknownName {
                    path: format!("{path}.group"),
                    what: "group",
                    name: g.clone(),
                    suggestion: suggest(g, group_names.iter().copied()),
                });
                None
            }
        };
    }
    let labels = r.targets.as_deref().unwrap_or_default();
    if labels.is_empty() {
        errors.push(ConfigError::InvalidValue {
            path: format!("{path}.targets"),
            reason: "names no target".into(),
        });
        return None;
    }
    let mut out = Vec::new();
    for (j, label) in labels.iter().enumerate() {
        match resolve_target(label, own, groups) {
            Some(t) => out.push(t),
            None => {
                let all: Vec<String> = groups
                    .iter()
                    .flat_map(|g| &g.targets)
                    .map(|(p, m)| format!("{p}/{m}"))
                    .collect();
                errors.push(ConfigError::UnknownName {
                    path: format!("{path}.targets[{j}]"),
                    what: "target (provider/model of some group)",
                    name: label.clone(),
                    suggestion: suggest(label, all.iter().map(String::as_str)),
                });
            }
        }
    }
    (out.len() == labels.len()).then(|| Route::Targets(out.into()))
}

/// The position of target `provider/model`: in group `own` if it lists it, else the first group
/// (in name order) that does.
fn resolve_target(
    label: &str,
    own: Option<usize>,
    groups: &[GroupTargets<'_>],
) -> Option<TargetRef> {
    let (provider, model) = label.split_once('/')?;
    let find = |gi: usize| {
        let ti = groups
            .get(gi)?
            .targets
            .iter()
            .position(|t| *t == (provider, model))?;
        Some(TargetRef {
            group: gi,
            target: ti,
        })
    };
    own.and_then(find)
        .or_else(|| (0..groups.len()).find_map(find))
}
