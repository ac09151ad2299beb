//! Configured header tables whose values may be secrets (provider and policy headers).

use super::{ConfigError, resolve_secret};

/// Headers whose values may be secret references (`env:NAME`, `file:/path`, inline), resolved
/// and marked sensitive (so `Debug` hides them); `path` is the table holding `headers`.
pub(super) fn secret_headers(
    path: &str,
    raw: &std::collections::BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut headers = Vec::new();
    for (k, v) in raw {
        let key_path = format!("{path}.headers.{k}");
        let value = match resolve_secret(v) {
            Ok((secret, _)) => secret,
            Err(source) => {
                errors.push(ConfigError::Secret {
                    path: key_path,
                    source,
                });
                continue;
            }
        };
        match (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(value.expose()),
        ) {
            (Ok(k), Ok(mut v)) => {
                v.set_sensitive(true);
                headers.push((k, v));
            }
            _ => errors.push(ConfigError::InvalidValue {
                path: key_path,
                reason: "not a valid HTTP header name and value".into(),
            }),
        }
    }
    headers
}
