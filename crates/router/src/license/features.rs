//! The licensed features, and which parts of a configuration (or which endpoints) each one
//! covers — one table, also in the README.

use crate::config::Config;

/// A licensed feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Model groups and routing (every deployment needs it).
    Routing,
    /// Usage records in a store, and a caller's own usage (`/v1/router/usage`).
    UsageReporting,
    /// Operator reports: `/admin/reports/usage`, `/admin/requests/{id}`, `/admin/limits`,
    /// `smart-router report`, and callers with the `report-admin` role.
    AdminReports,
    /// Usage exports: `/admin/exports/usage`, `smart-router export`.
    Exports,
    /// `[[quotas]]` and `[[budgets]]`.
    Quotas,
    /// Dynamic routing rules (`[[groups.G.rules]]`).
    DynamicRouting,
    /// External policy services (`[[policies]]`).
    ExternalPolicy,
    /// PII filtering (`[[pii_policies]]`).
    PiiFiltering,
    /// Providers on private addresses (loopback, RFC 1918, link-local, unique-local, and
    /// names that only resolve inside a network: `localhost`, `*.internal`, `*.local`,
    /// single-label names).
    PrivateUpstreams,
}

/// Every feature by its license name, with what it covers.
pub const FEATURES: &[(&str, Feature)] = &[
    ("routing", Feature::Routing),
    ("usage_reporting", Feature::UsageReporting),
    ("admin_reports", Feature::AdminReports),
    ("exports", Feature::Exports),
    ("quotas", Feature::Quotas),
    ("dynamic_routing", Feature::DynamicRouting),
    ("external_policy", Feature::ExternalPolicy),
    ("pii_filtering", Feature::PiiFiltering),
    ("private_upstreams", Feature::PrivateUpstreams),
];

impl Feature {
    /// The license name.
    pub fn name(self) -> &'static str {
        FEATURES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Every (config key, feature) a configuration uses.
pub fn features_used(config: &Config) -> Vec<(String, Feature)> {
    let mut out = Vec::new();
    if !config.groups.is_empty() {
        out.push(("groups".to_string(), Feature::Routing));
    }
    if config.store.url != "none" {
        out.push(("store.url".to_string(), Feature::UsageReporting));
    }
    for (i, c) in config.callers.iter().enumerate() {
        if c.roles.report_admin {
            out.push((format!("callers[{i}].roles"), Feature::AdminReports));
        }
    }
    for (i, _) in config.limits.quotas.iter().enumerate() {
        out.push((format!("quotas[{i}]"), Feature::Quotas));
    }
    for (i, _) in config.limits.budgets.iter().enumerate() {
        out.push((format!("budgets[{i}]"), Feature::Quotas));
    }
    for (i, _) in config.pii_policies.iter().enumerate() {
        out.push((format!("pii_policies[{i}]"), Feature::PiiFiltering));
    }
    for g in &config.groups {
        for (i, _) in g.rules.iter().enumerate() {
            out.push((
                format!("groups.{}.rules[{i}]", g.name),
                Feature::DynamicRouting,
            ));
        }
    }
    for (i, _) in config.policies.iter().enumerate() {
        out.push((format!("policies[{i}]"), Feature::ExternalPolicy));
    }
    for p in &config.providers {
        if private_host(&p.base_url) {
            out.push((
                format!("providers.{}.base_url", p.name),
                Feature::PrivateUpstreams,
            ));
        }
    }
    out
}

/// Whether a URL's host is an address (or name) reachable only inside a private network.
pub(crate) fn private_host(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
    }
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || !host.contains('.')
        || [".localhost", ".local", ".internal", ".lan", ".home.arpa"]
            .iter()
            .any(|s| host.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts() {
        for url in [
            "http://127.0.0.1:8000/v1",
            "http://10.1.2.3/v1",
            "http://192.168.0.9",
            "http://[::1]:9/v1",
            "http://[fd00::1]/v1",
            "http://localhost:11434/v1",
            "http://vllm/v1",
            "http://gpu.internal/v1",
        ] {
            assert!(private_host(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "https://8.8.8.8/v1",
            "https://api.anthropic.com",
        ] {
            assert!(!private_host(url), "{url}");
        }
    }
}
