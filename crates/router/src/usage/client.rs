//! Which client sent a request, from its user agent and client headers. One table, first match
//! wins.

use http::HeaderMap;
use http::header::{HeaderName, USER_AGENT};

/// (header, substring, client). Checked in order.
const RULES: &[(&str, &str, &str)] = &[
    ("originator", "codex", "codex"),
    ("user-agent", "codex_", "codex"),
    ("user-agent", "claude-cli", "claude-code"),
    ("x-app", "cli", "claude-code"),
    ("user-agent", "Anthropic/Python", "anthropic-python"),
    ("user-agent", "Anthropic/JS", "anthropic-node"),
    ("user-agent", "OpenAI/Python", "openai-python"),
    ("user-agent", "OpenAI/JS", "openai-node"),
    ("user-agent", "smart-router/", "smart-router"),
    ("user-agent", "curl/", "curl"),
];

/// The client name for a request's headers (`other` when no rule matches). Each header the
/// table names is looked up once.
pub fn detect_client(headers: &HeaderMap) -> &'static str {
    const ORIGINATOR: HeaderName = HeaderName::from_static("originator");
    const X_APP: HeaderName = HeaderName::from_static("x-app");
    let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let (user_agent, originator, app) = (get(&USER_AGENT), get(&ORIGINATOR), get(&X_APP));
    RULES
        .iter()
        .find(|(h, needle, _)| {
            let value = match *h {
                "originator" => originator,
                "x-app" => app,
                _ => user_agent,
            };
            value.is_some_and(|v| v.contains(needle))
        })
        .map_or("other", |(_, _, client)| client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn detects_known_clients() {
        assert_eq!(
            detect_client(&h(&[
                ("user-agent", "codex_exec/0.169.0 (Debian)"),
                ("originator", "codex_exec")
            ])),
            "codex"
        );
        assert_eq!(
            detect_client(&h(&[(
                "user-agent",
                "claude-cli/2.1.330 (external, sdk-cli)"
            )])),
            "claude-code"
        );
        assert_eq!(
            detect_client(&h(&[("user-agent", "OpenAI/Python 3.54.0")])),
            "openai-python"
        );
        assert_eq!(
            detect_client(&h(&[("user-agent", "Anthropic/Python 2.12.0")])),
            "anthropic-python"
        );
        assert_eq!(detect_client(&h(&[("user-agent", "curl/8.1")])), "curl");
        assert_eq!(detect_client(&h(&[("user-agent", "Mozilla/5.0")])), "other");
    }
}
