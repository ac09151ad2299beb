//! `[[pii_policies]]`: raw (as written) and validated (detectors compiled), every problem
//! reported with its key path.

use super::error::choice;
use super::{ConfigError, GroupConfig, suggest};
use crate::pii::{Custom, DetectError, Detector, ResponseMode, built_in_names};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;

/// `[[pii_policies]]` as written.
#[derive(Debug, Deserialize)]
pub struct RawPiiPolicy {
    /// The operator's name.
    pub name: String,
    /// Which requests it applies to.
    #[serde(default)]
    pub applies_to: RawAppliesTo,
    /// Built-in detectors (default: all).
    #[serde(default)]
    pub detect: Option<Vec<String>>,
    /// The operator's own patterns.
    #[serde(default)]
    pub custom: Vec<RawCustom>,
    /// `redact` | `block` | `shadow`.
    #[serde(default = "default_action")]
    pub action: String,
    /// `restore` | `redact` | `off`.
    #[serde(default = "default_responses")]
    pub responses: String,
}

/// `applies_to` of a content policy: each list given must contain the request's value; a list
/// left out matches everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppliesTo {
    /// Groups (`*`: all).
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Caller names.
    #[serde(default)]
    pub callers: Option<Vec<String>>,
    /// Projects.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
    /// Teams.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// Environments.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
}

/// `custom = [{ name, regex }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustom {
    /// The kind's name (`[a-z0-9_]+`), shown in records and errors and, in capitals, in
    /// placeholders.
    pub name: String,
    /// The pattern (the `regex` crate's syntax; linear-time, size-limited).
    pub regex: String,
}

fn default_action() -> String {
    "redact".into()
}
fn default_responses() -> String {
    "restore".into()
}

/// Which requests a content policy applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliesTo {
    /// Groups; none: all.
    pub groups: Option<HashSet<String>>,
    /// Caller names; none: all.
    pub callers: Option<HashSet<String>>,
    /// Projects; none: all.
    pub projects: Option<HashSet<String>>,
    /// Teams; none: all.
    pub teams: Option<HashSet<String>>,
    /// Environments; none: all.
    pub environments: Option<HashSet<String>>,
}

impl AppliesTo {
    /// Whether a caller with these attributes asking for `group` is covered.
    pub fn covers(
        &self,
        caller: &str,
        project: Option<&str>,
        team: Option<&str>,
        environment: Option<&str>,
        group: &str,
    ) -> bool {
        let has = |set: &Option<HashSet<String>>, v: Option<&str>| {
            set.as_ref()
                .is_none_or(|s| v.is_some_and(|v| s.contains(v)))
        };
        has(&self.groups, Some(group))
            && has(&self.callers, Some(caller))
            && has(&self.projects, project)
            && has(&self.teams, team)
            && has(&self.environments, environment)
    }
}

/// What a PII policy does with requests that carry personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiAction {
    /// Replace each value with a placeholder.
    Redact,
    /// Refuse the request (400 `pii_detected`).
    Block,
    /// Detect and record kinds and counts; change nothing.
    Shadow,
}

impl PiiAction {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAction::Redact => "redact",
            PiiAction::Block => "block",
            PiiAction::Shadow => "shadow",
        }
    }
}

/// A validated PII policy.
#[derive(Debug, Clone)]
pub struct PiiPolicyConfig {
    /// The operator's name.
    pub name: Arc<str>,
    /// Where it applies.
    pub applies: AppliesTo,
    /// Kinds detected (built-in names, then custom names), for summaries.
    pub kinds: Vec<String>,
    /// The compiled detectors.
    pub detector: Arc<Detector>,
    /// What happens to requests with findings.
    pub action: PiiAction,
    /// What happens to answers.
    pub responses: ResponseMode,
}

/// Validates `applies_to` of a content policy at `path`.
pub(super) fn validate_applies(
    path: &str,
    a: &RawAppliesTo,
    group_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> AppliesTo {
    let set = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.iter().cloned().collect());
    let groups = a.groups.as_ref().and_then(|gs| {
        if gs.is_empty() {
            errors.push(ConfigError::InvalidValue {
                path: format!("{path}.applies_to.groups"),
                reason: "names no group (use [\"*\"] for all, or leave it out)".into(),
            });
        }
        for (j, g) in gs.iter().enumerate() {
            if g != "*" && !group_names.contains(&g.as_str()) {
                errors.push(ConfigError::UnknownName {
                    path: format!("{path}.applies_to.groups[{j}]"),
                    what: "group",
                    name: g.clone(),
                    suggestion: suggest(g, group_names.iter().copied()),
                });
            }
        }
        (!gs.iter().any(|g| g == "*")).then(|| gs.iter().cloned().collect())
    });
    AppliesTo {
        groups,
        callers: set(&a.callers),
        projects: set(&a.projects),
        teams: set(&a.teams),
        environments: set(&a.environments),
    }
}

/// Validates `[[pii_policies]]`.
pub(super) fn validate_pii(
    raw: &[RawPiiPolicy],
    group_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<PiiPolicyConfig> {
    const ACTIONS: &[(&str, PiiAction)] = &[
        ("redact", PiiAction::Redact),
        ("block", PiiAction::Block),
        ("shadow", PiiAction::Shadow),
    ];
    const RESPONSES: &[(&str, ResponseMode)] = &[
        ("restore", ResponseMode::Restore),
        ("redact", ResponseMode::Redact),
        ("off", ResponseMode::Off),
    ];
    let mut names = HashSet::new();
    raw.iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let path = format!("pii_policies[{i}]");
            super::limits::unique_name(&path, "PII policy", &p.name, &mut names, errors);
            let applies = validate_applies(&path, &p.applies_to, group_names, errors);
            let action = choice(errors, format!("{path}.action"), &p.action, ACTIONS);
            let responses = choice(errors, format!("{path}.responses"), &p.responses, RESPONSES);
            let detect: Vec<String> = p
                .detect
                .clone()
                .unwrap_or_else(|| built_in_names().map(String::from).collect());
            let mut ok = true;
            for (j, d) in detect.iter().enumerate() {
                if !built_in_names().any(|b| b == d) {
                    ok = false;
                    errors.push(ConfigError::InvalidChoice {
                        path: format!("{path}.detect[{j}]"),
                        value: d.clone(),
                        expected: built_in_names().collect::<Vec<_>>().join(", "),
                        suggestion: suggest(d, built_in_names()),
                    });
                }
            }
            let mut custom = Vec::new();
            for (j, c) in p.custom.iter().enumerate() {
                let valid_name = !c.name.is_empty()
                    && c.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid_name || built_in_names().any(|b| b == c.name) {
                    ok = false;
                    errors.push(ConfigError::InvalidValue {
                        path: format!("{path}.custom[{j}].name"),
                        reason: format!(
                            "{:?} must be lower-case letters, digits and _, and not a built-in detector's name",
                            crate::bounds::clip(&c.name, 64)
                        ),
                    });
                }
                let one = Custom {
                    name: c.name.clone(),
                    regex: c.regex.clone(),
                };
                if let Err(DetectError::Pattern { reason, .. }) = Detector::new(&[], &[one]) {
                    ok = false;
                    errors.push(ConfigError::InvalidValue {
                        path: format!("{path}.custom[{j}].regex"),
                        reason,
                    });
                }
                custom.push(Custom {
                    name: c.name.clone(),
                    regex: c.regex.clone(),
                });
            }
            if detect.is_empty() && custom.is_empty() {
                ok = false;
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.detect"),
                    reason: "detects nothing (name built-in detectors or add custom patterns)"
                        .into(),
                });
            }
            if !ok {
                return None;
            }
            let detector = match Detector::new(&detect, &custom) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(ConfigError::InvalidValue {
                        path: path.clone(),
                        reason: e.to_string(),
                    });
                    return None;
                }
            };
            let kinds = detect
                .iter()
                .cloned()
                .chain(custom.iter().map(|c| c.name.clone()))
                .collect();
            Some(PiiPolicyConfig {
                name: p.name.as_str().into(),
                applies,
                kinds,
                detector: Arc::new(detector),
                action: action?,
                responses: responses?,
            })
        })
        .collect()
}

/// Whether `policy` covers `group` at all (for summaries).
pub fn covers_group(applies: &AppliesTo, group: &GroupConfig) -> bool {
    applies
        .groups
        .as_ref()
        .is_none_or(|g| g.contains(&group.name))
}
