//! `smart-router codex-config`: a ready Codex CLI configuration for one group. Codex sizes its
//! context and compaction from model metadata it does not have for a custom provider, so the
//! figures come from the group's targets (the smallest context window among them).

use router::config::Config;
use std::fmt::Write;

/// Context window assumed when no target of the group declares one.
const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;

/// The `config.toml` text for `group`, or `None` if there is no such group.
pub(crate) fn config_toml(
    config: &Config,
    group: &str,
    base_url: &str,
    env_key: &str,
) -> Option<String> {
    let g = config.group(group)?;
    let windows: Vec<u64> = g.targets.iter().filter_map(|t| t.context_window).collect();
    let window = windows
        .iter()
        .copied()
        .min()
        .unwrap_or(DEFAULT_CONTEXT_WINDOW);
    let compact = window / 10 * 9;
    let reasoning = g.targets.iter().all(|t| t.capabilities.reasoning);
    let base = base_url.trim_end_matches('/');
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Codex CLI configuration for model group \"{group}\" through smart-router."
    );
    let _ = writeln!(
        out,
        "# Save as $CODEX_HOME/config.toml (default ~/.codex/config.toml); put the router token in ${env_key}."
    );
    let _ = writeln!(out, "model = \"{group}\"");
    let _ = writeln!(out, "model_provider = \"smart-router\"");
    let source = if windows.is_empty() {
        "no target declares context_window: a default"
    } else {
        "the smallest context_window of the group's targets"
    };
    let _ = writeln!(out, "model_context_window = {window}  # {source}");
    let _ = writeln!(
        out,
        "model_auto_compact_token_limit = {compact}  # 90% of the window"
    );
    if reasoning {
        let _ = writeln!(
            out,
            "model_reasoning_effort = \"medium\"  # every target has `reasoning`: low | medium | high"
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "[model_providers.smart-router]");
    let _ = writeln!(out, "name = \"smart-router\"");
    let _ = writeln!(out, "base_url = \"{base}/v1\"");
    let _ = writeln!(out, "env_key = \"{env_key}\"");
    let _ = writeln!(out, "wire_api = \"responses\"");
    let _ = writeln!(
        out,
        "supports_websockets = false  # the router streams over HTTP; it refuses WebSocket upgrades with 426"
    );
    let _ = writeln!(out);
    let levels = if reasoning {
        "[\"low\", \"medium\", \"high\"]"
    } else {
        "[]"
    };
    let _ = writeln!(out, "# Model catalog entry for \"{group}\":");
    let _ = writeln!(
        out,
        "#   context_window = {window}, auto_compact_token_limit = {compact}, supported_reasoning_levels = {levels}"
    );
    Some(out)
}
