//! Configuration errors: each names the path of the offending key.

pub use crate::spelling::suggest;
use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config file: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// TOML syntax or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// Key path (or `(file)` when the syntax is broken).
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key the configuration does not know.
    #[error("{path}: unknown key")]
    UnknownKey {
        /// Key path.
        path: String,
    },
    /// A value outside its allowed set.
    #[error("{path}: {value:?} is not one of {expected}{}", hint(.suggestion))]
    InvalidChoice {
        /// Key path.
        path: String,
        /// The value written.
        value: String,
        /// The allowed values.
        expected: String,
        /// The closest allowed value.
        suggestion: Option<String>,
    },
    /// A name that refers to nothing.
    #[error("{path}: no {what} named {name:?}{}", hint(.suggestion))]
    UnknownName {
        /// Key path.
        path: String,
        /// `provider` or `group`.
        what: &'static str,
        /// The name written.
        name: String,
        /// The closest existing name.
        suggestion: Option<String>,
    },
    /// A value that is malformed or out of range.
    #[error("{path}: {reason}")]
    InvalidValue {
        /// Key path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A secret reference that cannot be resolved.
    #[error("{path}: {source}")]
    Secret {
        /// Key path.
        path: String,
        /// Why.
        source: super::SecretError,
    },
    /// Two callers share a token.
    #[error("{path}: same token as callers[{other}]")]
    DuplicateToken {
        /// Key path.
        path: String,
        /// Index of the other caller.
        other: usize,
    },
    /// A name used twice.
    #[error("{path}: duplicate {what} {name:?}")]
    Duplicate {
        /// Key path.
        path: String,
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
}

fn hint(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => String::new(),
    }
}

/// All problems of one file, printed one per line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The value of `all` spelled `value`, or an [`ConfigError::InvalidChoice`] at `path` (with a
/// suggestion) pushed onto `errors`.
pub(super) fn choice<T: Copy>(
    errors: &mut Vec<ConfigError>,
    path: String,
    value: &str,
    all: &[(&'static str, T)],
) -> Option<T> {
    if let Some((_, v)) = all.iter().find(|(name, _)| *name == value) {
        return Some(*v);
    }
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    errors.push(ConfigError::InvalidChoice {
        path,
        value: value.to_string(),
        expected: names.join(", "),
        suggestion: suggest(value, names.iter().copied()),
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            suggest("opnai", ["openai", "claude"]).as_deref(),
            Some("openai")
        );
        assert_eq!(suggest("zzz", ["openai", "claude"]), None);
    }
}
