//! Secrets (provider keys, plain caller tokens): resolved from `env:NAME` or `file:/path`
//! references, and never printed.

use sha2::{Digest, Sha256};
use std::fmt;

/// SHA-256 of a caller token, as `token_sha256` stores it.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex form of [`hash_token`], as `smart-router hash-token` prints it.
pub fn hash_token_hex(token: &str) -> String {
    super::hex(&hash_token(token))
}

/// A secret value. `Debug` and `Display` print `***`; only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value known to be secret.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret's value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:NAME`.
    Env,
    /// `file:/path`.
    File,
    /// Written inline in the config file (discouraged outside demos and tests).
    Inline,
}

/// Why a secret reference could not be resolved. Never carries the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// `env:NAME` names an unset (or non-UTF-8) variable.
    #[error("environment variable {name} is not set")]
    EnvMissing {
        /// The variable's name.
        name: String,
    },
    /// `file:/path` could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    FileUnreadable {
        /// The file's path.
        path: String,
        /// The I/O error kind.
        reason: String,
    },
    /// The reference resolved to an empty value.
    #[error("secret {reference} is empty")]
    Empty {
        /// The reference as written (`env:NAME` / `file:/path`), never the value.
        reference: String,
    },
}

/// Resolves `env:NAME`, `file:/path` or an inline value.
pub fn resolve_secret(reference: &str) -> Result<(Secret, SecretSource), SecretError> {
    let (value, source) = if let Some(name) = reference.strip_prefix("env:") {
        let v = std::env::var(name).map_err(|_| SecretError::EnvMissing {
            name: name.to_string(),
        })?;
        (v, SecretSource::Env)
    } else if let Some(path) = reference.strip_prefix("file:") {
        let v = std::fs::read_to_string(path).map_err(|e| SecretError::FileUnreadable {
            path: path.to_string(),
            reason: e.kind().to_string(),
        })?;
        (
            v.trim_end_matches(['\r', '\n']).to_string(),
            SecretSource::File,
        )
    } else {
        (reference.to_string(), SecretSource::Inline)
    };
    if value.is_empty() {
        let shown = match source {
            SecretSource::Inline => "(inline)".to_string(),
            _ => reference.to_string(),
        };
        return Err(SecretError::Empty { reference: shown });
    }
    Ok((Secret(value), source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("sk-very-secret".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn resolves_references() {
        let dir = std::env::temp_dir().join(format!("sr-secret-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        let (s, src) = resolve_secret(&format!("file:{}", dir.display())).unwrap();
        assert_eq!((s.expose(), src), ("from-file", SecretSource::File));
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            resolve_secret("env:SMART_ROUTER_SURELY_UNSET_VAR"),
            Err(SecretError::EnvMissing { .. })
        ));
        assert!(matches!(
            resolve_secret("file:/nonexistent/x"),
            Err(SecretError::FileUnreadable { .. })
        ));
        assert_eq!(resolve_secret("inline").unwrap().1, SecretSource::Inline);
    }
}
