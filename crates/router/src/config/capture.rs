//! `[[capture_policies]]`: which requests' bodies are stored, and for how long. Off unless a
//! policy applies; every problem reported with its key path.

use super::ConfigError;
use super::error::choice;
use super::pii::{AppliesTo, RawAppliesTo, validate_applies};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;

/// `[[capture_policies]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapturePolicy {
    /// The operator's name (usage records say which policy captured).
    pub name: String,
    /// Which requests it applies to.
    #[serde(default)]
    pub applies_to: RawAppliesTo,
    /// `none` | `errors` | `sampled` | `all`.
    pub capture: String,
    /// Share of requests captured, for `sampled`.
    #[serde(default)]
    pub sample_rate: Option<f64>,
    /// Longest body kept, per request and per response (longer ones are cut and marked).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Days captured bodies are kept (purged like usage records).
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Capture after PII redaction (default); `false` captures raw text.
    #[serde(default = "default_true")]
    pub redact_pii: bool,
}

fn default_max_body() -> usize {
    65_536
}
fn default_retention() -> u32 {
    7
}
fn default_true() -> bool {
    true
}

/// Which requests a capture policy stores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CaptureMode {
    /// None (a policy that switches capture off for the requests it covers).
    None,
    /// Requests that ended in an error (status 400 or above, or a broken stream).
    Errors,
    /// This share of requests, chosen at random.
    Sampled(f64),
    /// Every request.
    All,
}

impl CaptureMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::None => "none",
            CaptureMode::Errors => "errors",
            CaptureMode::Sampled(_) => "sampled",
            CaptureMode::All => "all",
        }
    }
}

/// A validated capture policy.
#[derive(Debug, Clone)]
pub struct CapturePolicyConfig {
    /// The operator's name.
    pub name: Arc<str>,
    /// Where it applies.
    pub applies: AppliesTo,
    /// What it captures.
    pub capture: CaptureMode,
    /// Longest body kept.
    pub max_body_bytes: usize,
    /// Days kept.
    pub retention_days: u32,
    /// PII is redacted before storing.
    pub redact_pii: bool,
}

/// Validates `[[capture_policies]]`.
pub(super) fn validate_capture(
    raw: &[RawCapturePolicy],
    group_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<CapturePolicyConfig> {
    #[derive(Clone, Copy)]
    enum Kind {
        None,
        Errors,
        Sampled,
        All,
    }
    const KINDS: &[(&str, Kind)] = &[
        ("none", Kind::None),
        ("errors", Kind::Errors),
        ("sampled", Kind::Sampled),
        ("all", Kind::All),
    ];
    let mut names = HashSet::new();
    raw.iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let path = format!("capture_policies[{i}]");
            super::limits::unique_name(&path, "capture policy", &p.name, &mut names, errors);
            let applies = validate_applies(&path, &p.applies_to, group_names, errors);
            let kind = choice(errors, format!("{path}.capture"), &p.capture, KINDS);
            let capture = match kind? {
                Kind::None => CaptureMode::None,
                Kind::Errors => CaptureMode::Errors,
                Kind::All => CaptureMode::All,
                Kind::Sampled => match p.sample_rate {
                    Some(r) if r > 0.0 && r <= 1.0 => CaptureMode::Sampled(r),
                    _ => {
                        errors.push(ConfigError::InvalidValue {
                            path: format!("{path}.sample_rate"),
                            reason: "capture = \"sampled\" needs a sample_rate greater than 0 and at most 1".into(),
                        });
                        return None;
                    }
                },
            };
            if p.max_body_bytes == 0 || p.max_body_bytes > 16 << 20 {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.max_body_bytes"),
                    reason: "must be between 1 and 16777216".into(),
                });
                return None;
            }
            if p.retention_days == 0 {
                errors.push(ConfigError::InvalidValue {
                    path: format!("{path}.retention_days"),
                    reason: "must be at least 1 (captured content always expires)".into(),
                });
                return None;
            }
            Some(CapturePolicyConfig {
                name: p.name.as_str().into(),
                applies,
                capture,
                max_body_bytes: p.max_body_bytes,
                retention_days: p.retention_days,
                redact_pii: p.redact_pii,
            })
        })
        .collect()
}
