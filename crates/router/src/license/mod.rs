//! Signed licenses: `license.json` is a payload (who, when, what, where) and an Ed25519
//! signature over its canonical encoding, verified with public keys compiled into the binary.
//!
//! - [`LicenseFile::parse`] reads and verifies a file: the signature (any byte of the payload
//!   changed fails it), the key id, every field and the order of the dates.
//! - [`License::status`] is the license at a moment: `licensed`, `grace` (expired, within
//!   `grace_days`), `expired`; with no license the router is `unlicensed` (evaluation: every
//!   feature, one instance); a license that fails verification is `invalid`.
//! - [`License::admit`] is what `serve` and `check-config` ask before a config is loaded:
//!   valid signature, started, not past grace, the deployment binding, and every feature the
//!   config uses licensed — each refusal names the field or config key.
//! - [`canonical`] is the signed encoding (also in the README).

mod features;
mod keys;
mod runtime;

pub use features::{FEATURES, Feature, features_used};
pub use keys::{KeyPair, generate, sign_payload, trusted_key_ids};
pub use runtime::{Clock, LicenseState, RegisterError, Warning, system_clock};

use crate::config::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a signature is computed over: this prefix, then the canonical payload.
pub const SIGNING_PREFIX: &[u8] = b"smart-router-license-v1\n";

/// Why a license file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LicenseError {
    /// The file could not be read.
    #[error("{path}: cannot read the license: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// Not a JSON object with `payload` and `signature`.
    #[error("{path}: not a license file: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A payload field is missing or of the wrong kind.
    #[error("{path}: payload.{field}: {reason}")]
    Field {
        /// The file.
        path: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The signature is not 64 bytes of hex.
    #[error("{path}: signature: expected 128 hex characters (an Ed25519 signature), got {len}")]
    SignatureLength {
        /// The file.
        path: String,
        /// Characters found.
        len: usize,
    },
    /// Signed with a key this build does not trust.
    #[error("{path}: key_id {key_id:?} is not a key this build trusts (trusted: {trusted})")]
    UnknownKey {
        /// The file.
        path: String,
        /// The key id named.
        key_id: String,
        /// The trusted ids.
        trusted: String,
    },
    /// The signature does not match the payload.
    #[error(
        "{path}: the signature does not match the payload (the license was altered, or signed with another key)"
    )]
    BadSignature {
        /// The file.
        path: String,
    },
    /// Dates that contradict each other.
    #[error("{path}: payload dates out of order: {reason}")]
    Dates {
        /// The file.
        path: String,
        /// Which.
        reason: String,
    },
}

/// A verified license payload.
#[derive(Debug, Clone, PartialEq)]
pub struct License {
    /// Where it was read from.
    pub path: PathBuf,
    /// The license's id.
    pub license_id: String,
    /// Who it is for.
    pub customer: String,
    /// When it was issued (Unix seconds).
    pub issued_at: i64,
    /// From when it is valid.
    pub not_before: i64,
    /// Until when it is valid.
    pub expires_at: i64,
    /// Days it keeps working after `expires_at`.
    pub grace_days: u32,
    /// Licensed features.
    pub features: Vec<String>,
    /// Most live replicas sharing one store.
    pub max_instances: u32,
    /// The deployment it is bound to (`server.deployment_id`).
    pub deployment_id: Option<String>,
    /// Hostname patterns (`*` and `?` globs) it is bound to.
    pub hostnames: Vec<String>,
    /// Free text.
    pub notes: Option<String>,
    /// The key it was signed with.
    pub key_id: String,
}

/// A license at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Valid.
    Licensed,
    /// Past `expires_at`, within `grace_days`: everything works.
    Grace,
    /// Past grace: a running router keeps serving; it refuses to start or load a config.
    Expired,
    /// No license: evaluation (every feature, one instance).
    Unlicensed,
    /// Not yet valid (`not_before` in the future).
    NotYetValid,
}

impl Status {
    /// The one word `/version` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Licensed => "licensed",
            Status::Grace => "grace",
            Status::Expired => "expired",
            Status::Unlicensed => "unlicensed",
            Status::NotYetValid => "invalid",
        }
    }
}

/// Seconds since the epoch of `t`.
fn unix(t: SystemTime) -> i64 {
    crate::time::unix_ms(t).div_euclid(1000)
}

/// RFC 3339 UTC of Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    crate::time::rfc3339_ms(secs.saturating_mul(1000))
}

/// The canonical encoding of a JSON value, which signatures are computed over: object keys
/// sorted by their UTF-8 bytes, no whitespace, strings escaped as JSON requires (`"`, `\`,
/// and control characters as `\n`, `\t`, `\r`, `\b`, `\f` or `\u00XX`; nothing else), integers
/// in plain decimal; fractional numbers are not allowed in a payload.
pub fn canonical(v: &Value) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    write_canonical(v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) -> Result<(), &'static str> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err("fractional numbers are not allowed in a license payload");
            }
        }
        Value::String(s) => {
            out.push(b'"');
            for c in s.chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\n' => out.extend_from_slice(b"\\n"),
                    '\r' => out.extend_from_slice(b"\\r"),
                    '\t' => out.extend_from_slice(b"\\t"),
                    '\u{8}' => out.extend_from_slice(b"\\b"),
                    '\u{c}' => out.extend_from_slice(b"\\f"),
                    c if (c as u32) < 0x20 => {
                        out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                    }
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out.push(b'"');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String((*k).clone()), out)?;
                out.push(b':');
                write_canonical(&m[*k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// The payload fields a license may have.
const FIELDS: &[&str] = &[
    "license_id",
    "customer",
    "issued_at",
    "not_before",
    "expires_at",
    "grace_days",
    "features",
    "max_instances",
    "deployment_id",
    "hostnames",
    "notes",
    "key_id",
];

/// A license file as read and verified.
#[derive(Debug)]
pub struct LicenseFile;

impl LicenseFile {
    /// Reads and verifies `path` against the compiled-in keys.
    pub fn read(path: &Path) -> Result<License, LicenseError> {
        let bytes = std::fs::read(path).map_err(|e| LicenseError::Read {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })?;
        Self::parse(path, &bytes, keys::trusted())
    }

    /// Verifies a license's bytes against `trusted` (key id, public key) pairs.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        trusted: &[(&str, [u8; 32])],
    ) -> Result<License, LicenseError> {
        let p = path.display().to_string();
        let malformed = |reason: String| LicenseError::Malformed {
            path: p.clone(),
            reason,
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| malformed("the file is not a JSON object".into()))?;
        for k in obj.keys() {
            if !matches!(k.as_str(), "payload" | "signature" | "key_id") {
                return Err(malformed(format!("unknown top-level field {k:?}")));
            }
        }
        let payload = obj
            .get("payload")
            .filter(|p| p.is_object())
            .ok_or_else(|| malformed("no payload object".into()))?;
        let signature = obj
            .get("signature")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no signature string".into()))?;
        let field = |field: &'static str, reason: String| LicenseError::Field {
            path: p.clone(),
            field,
            reason,
        };
        for k in payload.as_object().expect("checked above").keys() {
            if !FIELDS.contains(&k.as_str()) {
                return Err(LicenseError::Field {
                    path: p.clone(),
                    field: "(unknown)",
                    reason: format!("unknown field {k:?}"),
                });
            }
        }
        let key_id = payload
            .get("key_id")
            .or_else(|| obj.get("key_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| field("key_id", "missing (in the payload or beside it)".into()))?
            .to_string();
        let sig = keys::signature_from_hex(signature).ok_or(LicenseError::SignatureLength {
            path: p.clone(),
            len: signature.len(),
        })?;
        let key = trusted
            .iter()
            .find(|(id, _)| *id == key_id)
            .map(|(_, k)| k)
            .ok_or_else(|| LicenseError::UnknownKey {
                path: p.clone(),
                key_id: key_id.clone(),
                trusted: trusted
                    .iter()
                    .map(|(id, _)| *id)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let message = signed_message(payload).map_err(|e| field("(payload)", e.into()))?;
        if !keys::verify(key, &message, &sig) {
            return Err(LicenseError::BadSignature { path: p.clone() });
        }
        let text = |name: &'static str| -> Result<String, LicenseError> {
            payload
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
                .ok_or_else(|| field(name, "missing or not a non-empty string".into()))
        };
        let time = |name: &'static str| -> Result<i64, LicenseError> {
            let s = text(name)?;
            crate::time::parse_time_ms(&s)
                .ok()
                .filter(|_| s.contains('T') && s.ends_with('Z'))
                .map(|ms| ms.div_euclid(1000))
                .ok_or_else(|| {
                    field(
                        name,
                        format!("{s:?} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)"),
                    )
                })
        };
        let count = |name: &'static str| -> Result<u32, LicenseError> {
            payload
                .get(name)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| field(name, "missing or not a whole number".into()))
        };
        let strings = |name: &'static str, required: bool| -> Result<Vec<String>, LicenseError> {
            match payload.get(name) {
                None if !required => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| field(name, "must be a list of strings".into())),
                _ => Err(field(name, "missing or not a list of strings".into())),
            }
        };
        let features = strings("features", true)?;
        for f in &features {
            if !FEATURES.iter().any(|(name, _)| name == f) {
                return Err(field(
                    "features",
                    format!(
                        "unknown feature {f:?} (known: {})",
                        FEATURES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let license = License {
            path: path.to_path_buf(),
            license_id: text("license_id")?,
            customer: text("customer")?,
            issued_at: time("issued_at")?,
            not_before: time("not_before")?,
            expires_at: time("expires_at")?,
            grace_days: count("grace_days")?,
            features,
            max_instances: count("max_instances")?,
            deployment_id: payload
                .get("deployment_id")
                .map(|_| text("deployment_id"))
                .transpose()?,
            hostnames: strings("hostnames", false)?,
            notes: payload
                .get("notes")
                .and_then(Value::as_str)
                .map(str::to_string),
            key_id,
        };
        if license.max_instances == 0 {
            return Err(field("max_instances", "must be at least 1".into()));
        }
        let dates = |reason: &str| LicenseError::Dates {
            path: p.clone(),
            reason: reason.into(),
        };
        if license.not_before < license.issued_at {
            return Err(dates("not_before is before issued_at"));
        }
        if license.expires_at <= license.not_before {
            return Err(dates("expires_at is not after not_before"));
        }
        Ok(license)
    }
}

/// The bytes a license signature covers: [`SIGNING_PREFIX`], then the canonical payload.
pub fn signed_message(payload: &Value) -> Result<Vec<u8>, &'static str> {
    let mut m = SIGNING_PREFIX.to_vec();
    m.extend(canonical(payload)?);
    Ok(m)
}

/// Why a configuration may not be loaded under a license.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Past `expires_at` plus grace.
    #[error(
        "{path}: the license {license_id} expired on {expired} and its {grace_days}-day grace ended on {grace_end}; install a renewed license.json (a running router keeps serving, but none starts or loads a config with this one)"
    )]
    Expired {
        /// The file.
        path: String,
        /// Its id.
        license_id: String,
        /// `expires_at`.
        expired: String,
        /// Grace days.
        grace_days: u32,
        /// When grace ended.
        grace_end: String,
    },
    /// Before `not_before`.
    #[error("{path}: the license {license_id} is not valid before {not_before}")]
    NotYetValid {
        /// The file.
        path: String,
        /// Its id.
        license_id: String,
        /// `not_before`.
        not_before: String,
    },
    /// Bound to another deployment or host.
    #[error("{path}: payload.{field}: this license is bound to {expected}, but {actual}")]
    Binding {
        /// The file.
        path: String,
        /// `deployment_id` or `hostnames`.
        field: &'static str,
        /// What it names.
        expected: String,
        /// What this deployment is.
        actual: String,
    },
    /// The config uses a feature the license does not include.
    #[error("{key}: feature {feature:?} is not licensed (license {license_id} has: {have})")]
    Feature {
        /// The config key using it.
        key: String,
        /// The feature.
        feature: &'static str,
        /// The license.
        license_id: String,
        /// What it includes.
        have: String,
    },
}

impl License {
    /// The license at `now`.
    pub fn status(&self, now: SystemTime) -> Status {
        let t = unix(now);
        if t < self.not_before {
            Status::NotYetValid
        } else if t <= self.expires_at {
            Status::Licensed
        } else if t <= self.grace_end() {
            Status::Grace
        } else {
            Status::Expired
        }
    }

    /// When grace ends (Unix seconds).
    pub fn grace_end(&self) -> i64 {
        self.expires_at + i64::from(self.grace_days) * 86_400
    }

    /// Seconds until `expires_at` (negative once past).
    pub fn expires_in(&self, now: SystemTime) -> i64 {
        self.expires_at - unix(now)
    }

    /// Whether `feature` is licensed.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.iter().any(|f| f == feature.name())
    }

    /// Everything that keeps `config` from being loaded under this license at `now` on the
    /// host `hostname` (empty: it may).
    pub fn admit(&self, config: &Config, now: SystemTime, hostname: &str) -> Vec<Refusal> {
        let path = self.path.display().to_string();
        let mut out = Vec::new();
        match self.status(now) {
            Status::Expired => out.push(Refusal::Expired {
                path: path.clone(),
                license_id: self.license_id.clone(),
                expired: rfc3339(self.expires_at),
                grace_days: self.grace_days,
                grace_end: rfc3339(self.grace_end()),
            }),
            Status::NotYetValid => out.push(Refusal::NotYetValid {
                path: path.clone(),
                license_id: self.license_id.clone(),
                not_before: rfc3339(self.not_before),
            }),
            _ => {}
        }
        if let Some(want) = &self.deployment_id {
            if config.server.deployment_id.as_deref() != Some(want.as_str()) {
                out.push(Refusal::Binding {
                    path: path.clone(),
                    field: "deployment_id",
                    expected: format!("deployment_id {want:?}"),
                    actual: match &config.server.deployment_id {
                        Some(have) => format!("server.deployment_id is {have:?}"),
                        None => "server.deployment_id is not set".into(),
                    },
                });
            }
        }
        if !self.hostnames.is_empty() && !self.hostnames.iter().any(|h| glob(h, hostname)) {
            out.push(Refusal::Binding {
                path,
                field: "hostnames",
                expected: format!("hostnames {:?}", self.hostnames),
                actual: format!("this host is {hostname:?}"),
            });
        }
        for (key, feature) in features_used(config) {
            if !self.has(feature) {
                out.push(Refusal::Feature {
                    key,
                    feature: feature.name(),
                    license_id: self.license_id.clone(),
                    have: self.features.join(", "),
                });
            }
        }
        out
    }

    /// Whether to warn about the coming expiry now (the last 30 days before it).
    pub fn expiry_near(&self, now: SystemTime) -> bool {
        let left = self.expires_in(now);
        (0..=30 * 86_400).contains(&left)
    }
}

/// Why the configured license cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The file does not verify.
    #[error("{0}")]
    Invalid(#[from] LicenseError),
    /// It verifies, but does not admit the config (dates, binding, features).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refusal>),
}

/// Reads the license `config` names and checks that it admits `config` at `now` on this host —
/// what `serve`, `check-config` and a config reload ask. `Ok(None)`: no license configured
/// (unlicensed evaluation).
pub fn load(config: &Config, now: SystemTime) -> Result<Option<License>, LoadError> {
    let Some(path) = &config.license.path else {
        return Ok(None);
    };
    let license = LicenseFile::read(path)?;
    let refusals = license.admit(config, now, &hostname());
    if refusals.is_empty() {
        Ok(Some(license))
    } else {
        Err(LoadError::Refused(refusals))
    }
}

/// This machine's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// `*` (any run) and `?` (any one character) glob match, case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// How often a running router re-reads its license's status, and warns near expiry.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_escapes_minimally() {
        let v: Value = serde_json::from_str(
            r#"{"b": [1, -2, "x\"y\\z\n\u0001é"], "a": {"d": true, "c": null}}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(canonical(&v).unwrap()).unwrap(),
            "{\"a\":{\"c\":null,\"d\":true},\"b\":[1,-2,\"x\\\"y\\\\z\\n\\u0001é\"]}"
        );
        assert!(canonical(&serde_json::json!({"x": 1.5})).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("prod-*", "prod-router-1"));
        assert!(glob("router-?", "Router-7"));
        assert!(!glob("prod-*", "staging-1"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
    }
}
