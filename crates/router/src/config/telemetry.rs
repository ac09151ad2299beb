//! `[telemetry]`: OpenTelemetry traces sent over OTLP/HTTP, as written and validated.

use super::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[telemetry]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// The OTLP/HTTP collector (`http://host:4318`; spans go to `/v1/traces`); none: no traces.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Share of traces started here that are sampled (a caller's `traceparent` decides for
    /// its own traces).
    #[serde(default = "default_ratio")]
    pub sampling_ratio: f64,
    /// Service name on the spans (default: `server.name`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Longest one export may take.
    #[serde(default = "default_timeout")]
    pub export_timeout_ms: u64,
    /// Headers for the collector (`env:NAME`, `file:/path` or inline values).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            sampling_ratio: default_ratio(),
            service_name: None,
            export_timeout_ms: default_timeout(),
            headers: BTreeMap::new(),
        }
    }
}

fn default_ratio() -> f64 {
    1.0
}
fn default_timeout() -> u64 {
    10_000
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Where spans go (`.../v1/traces`); `None`: tracing is off.
    pub traces_url: Option<String>,
    /// Share of root traces sampled, 0 to 1.
    pub sampling_ratio: f64,
    /// Service name (`service.name`).
    pub service_name: String,
    /// Export timeout.
    pub export_timeout: Duration,
    /// Collector headers (values marked sensitive).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Validates `[telemetry]`; `server_name` is the default service name.
pub(super) fn validate_telemetry(
    raw: &RawTelemetry,
    server_name: &str,
    errors: &mut Vec<ConfigError>,
) -> TelemetryConfig {
    let traces_url = raw.otlp_endpoint.as_deref().and_then(|e| {
        match e.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => {
                errors.push(ConfigError::InvalidValue {
                    path: "telemetry.otlp_endpoint".into(),
                    reason: "OTLP over https is not built in: send to a collector on the host or \
                             in the pod over http (an OpenTelemetry Collector sidecar), which \
                             forwards with TLS"
                        .into(),
                });
                None
            }
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {
                // The endpoint is the collector's base; a full `/v1/traces` URL is kept as is.
                let base = e.trim_end_matches('/');
                Some(if base.ends_with("/v1/traces") {
                    base.to_string()
                } else {
                    format!("{base}/v1/traces")
                })
            }
            _ => {
                errors.push(ConfigError::InvalidValue {
                    path: "telemetry.otlp_endpoint".into(),
                    reason: "is not an http:// URL".into(),
                });
                None
            }
        }
    });
    if !(0.0..=1.0).contains(&raw.sampling_ratio) {
        errors.push(ConfigError::InvalidValue {
            path: "telemetry.sampling_ratio".into(),
            reason: format!("{} is not between 0 and 1", raw.sampling_ratio),
        });
    }
    if raw.export_timeout_ms == 0 {
        errors.push(ConfigError::InvalidValue {
            path: "telemetry.export_timeout_ms".into(),
            reason: "must be greater than 0".into(),
        });
    }
    TelemetryConfig {
        traces_url,
        sampling_ratio: raw.sampling_ratio.clamp(0.0, 1.0),
        service_name: raw
            .service_name
            .clone()
            .unwrap_or_else(|| server_name.to_string()),
        export_timeout: Duration::from_millis(raw.export_timeout_ms.max(1)),
        headers: super::headers::secret_headers("telemetry", &raw.headers, errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_is_off_by_default_and_checked_with_key_paths() {
        let mut errors = Vec::new();
        let off = validate_telemetry(&RawTelemetry::default(), "r1", &mut errors);
        assert!(errors.is_empty());
        assert_eq!(off.traces_url, None);
        assert_eq!(off.service_name, "r1");
        assert_eq!(off.sampling_ratio, 1.0);
        let on = validate_telemetry(
            &RawTelemetry {
                otlp_endpoint: Some("http://127.0.0.1:4318/".into()),
                service_name: Some("edge".into()),
                ..RawTelemetry::default()
            },
            "r1",
            &mut errors,
        );
        assert_eq!(
            on.traces_url.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(on.service_name, "edge");
        validate_telemetry(
            &RawTelemetry {
                otlp_endpoint: Some("https://collector.example:4318".into()),
                ..RawTelemetry::default()
            },
            "r1",
            &mut errors,
        );
        assert!(errors.remove(0).to_string().contains("sidecar"));
        let bad = RawTelemetry {
            otlp_endpoint: Some("127.0.0.1:4318".into()),
            sampling_ratio: 1.5,
            export_timeout_ms: 0,
            ..RawTelemetry::default()
        };
        validate_telemetry(&bad, "r1", &mut errors);
        let paths: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert!(paths[0].starts_with("telemetry.otlp_endpoint"), "{paths:?}");
        assert!(
            paths[1].starts_with("telemetry.sampling_ratio"),
            "{paths:?}"
        );
        assert!(
            paths[2].starts_with("telemetry.export_timeout_ms"),
            "{paths:?}"
        );
    }
}
