//! The persisted usage record: what a [`RequestOutcome`] becomes once priced and classified.
//! No prompt or response text, ever.

use super::RequestOutcome;
use crate::config::{Config, Price};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One request's usage, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Unique id of the record (UUIDv7), so a replayed record is stored once.
    pub record_id: String,
    /// The request id (shared across router hops).
    pub request_id: String,
    /// The sending router's name, across hops.
    pub parent_id: Option<String>,
    /// Arrival, Unix milliseconds.
    pub started_at_ms: i64,
    /// Caller name (none when authentication failed).
    pub caller: Option<String>,
    /// Caller's project.
    pub project: Option<String>,
    /// Caller's team.
    pub team: Option<String>,
    /// Caller's environment.
    pub environment: Option<String>,
    /// Client software (codex, claude-code, openai-python, ...).
    pub client: String,
    /// Surface (client dialect).
    pub surface: String,
    /// Group asked for.
    pub group: Option<String>,
    /// Provider that served (or last tried).
    pub provider: Option<String>,
    /// Upstream model that served (or last tried).
    pub model: Option<String>,
    /// `ok` or `error`.
    pub status: String,
    /// HTTP status sent to the client.
    pub http_status: i32,
    /// Error class, when failed.
    pub error_kind: Option<String>,
    /// Number of attempts.
    pub attempts: i32,
    /// Each attempt: provider, model, outcome, status, latency (JSON).
    pub attempts_json: String,
    /// A target other than the first attempted served.
    pub fallback: bool,
    /// Streamed response.
    pub stream: bool,
    /// Total latency, ms.
    pub latency_ms: f64,
    /// Time to first byte, ms.
    pub ttft_ms: Option<f64>,
    /// Prompt tokens, cached included.
    pub input_tokens: i64,
    /// Cached prompt tokens.
    pub cached_tokens: i64,
    /// Prompt tokens written to a cache.
    pub cache_write_tokens: i64,
    /// Completion tokens, reasoning included.
    pub output_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Cost in USD from the target's prices (0 without prices).
    pub cost_usd: f64,
    /// Translation warnings (JSON array of strings).
    pub warnings: String,
    /// Session affinity hit (1), miss (0), none (null).
    pub affinity_hit: Option<bool>,
    /// The quota or budget that refused the request, or would have (shadow mode).
    #[serde(default)]
    pub quota: Option<String>,
    /// Governance notes: a JSON array of `{"stage", "note"}` (never content).
    #[serde(default = "empty_array")]
    pub annotations: String,
    /// SHA-256 of the config file the request was served under (empty for records written
    /// before it was recorded).
    #[serde(default)]
    pub config_hash: String,
    /// The capture policy that stored the request's content (none: nothing was captured).
    #[serde(default)]
    pub capture_policy: Option<String>,
    /// The routing rule that decided the request (routed or denied it).
    #[serde(default)]
    pub rule: Option<String>,
}

/// One request's captured content, as stored (see [`crate::usage::capture`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CapturedContent {
    /// Its own id.
    pub capture_id: String,
    /// The request it belongs to.
    pub request_id: String,
    /// The capture policy that selected it.
    pub policy: String,
    /// When it was captured (Unix ms).
    pub captured_at_ms: i64,
    /// When it is purged (Unix ms).
    pub expires_at_ms: i64,
    /// The caller's dialect.
    pub surface: String,
    /// The request body (JSON text), possibly cut.
    pub request_body: String,
    /// The request body was longer than the policy's `max_body_bytes`.
    pub request_truncated: bool,
    /// The answer: a whole body as the caller received it (JSON text) or, for a stream, the
    /// assembled answer (`{"text": ..., "tool_calls": [...]}`), possibly cut.
    pub response_body: String,
    /// The answer was longer than `max_body_bytes`.
    pub response_truncated: bool,
    /// PII was redacted before storing.
    pub pii_redacted: bool,
}

fn empty_array() -> String {
    "[]".into()
}

/// Cost of usage at a price (USD per million tokens; cached input priced separately).
pub fn cost(price: Option<Price>, u: &dialects::canonical::Usage) -> f64 {
    let Some(p) = price else { return 0.0 };
    let uncached = u.input_tokens.saturating_sub(u.cached_input_tokens) as f64;
    (uncached * p.input
        + u.cached_input_tokens as f64 * p.cached_input
        + u.output_tokens as f64 * p.output)
        / 1e6
}

/// A target's names and price, interned once per config so that outcomes, metrics and records
/// share them instead of copying strings on every request.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    /// Provider name.
    pub provider: Arc<str>,
    /// Upstream model.
    pub model: Arc<str>,
    /// The target's prices, when configured.
    pub price: Option<Price>,
    /// The provider's `gen_ai.provider.name` (traces).
    pub gen_ai_provider: &'static str,
    /// `provider/model`, as sent in `x-router-target` (None if not a valid header value).
    pub header: Option<http::HeaderValue>,
}

/// Every target's [`TargetInfo`], indexed by target id.
#[derive(Debug, Clone, Default)]
pub struct TargetTable(Vec<TargetInfo>);

impl TargetTable {
    /// The targets a config declares.
    pub fn from_config(config: &Config) -> Self {
        let mut t: Vec<Option<TargetInfo>> = vec![None; config.target_count];
        for target in config.groups.iter().flat_map(|g| &g.targets) {
            let slot = &mut t[target.id];
            match slot {
                Some(info) => info.price = info.price.or(target.price),
                None => {
                    let p = &config.providers[target.provider];
                    let provider = &p.name;
                    *slot = Some(TargetInfo {
                        provider: provider.as_str().into(),
                        model: target.model.as_str().into(),
                        price: target.price,
                        gen_ai_provider: p.kind.gen_ai_name(),
                        header: http::HeaderValue::try_from(format!("{provider}/{}", target.model))
                            .ok(),
                    })
                }
            }
        }
        // Ids of targets an earlier config had (ids outlive reloads) are never looked up
        // through this table.
        TargetTable(
            t.into_iter()
                .map(|i| {
                    i.unwrap_or_else(|| TargetInfo {
                        provider: "-".into(),
                        model: "-".into(),
                        price: None,
                        gen_ai_provider: "-",
                        header: None,
                    })
                })
                .collect(),
        )
    }

    /// The target with id `id`.
    pub fn get(&self, id: usize) -> &TargetInfo {
        &self.0[id]
    }
}

/// One governance note as stored in `annotations`.
#[derive(Serialize)]
struct StoredNote<'a> {
    stage: &'a str,
    note: &'a str,
}

/// One attempt as stored in `attempts_json`.
#[derive(Serialize)]
struct StoredAttempt<'a> {
    provider: &'a str,
    model: &'a str,
    outcome: &'a str,
    status: Option<u16>,
    latency_ms: f64,
}

impl UsageRecord {
    /// Builds the record of a finished request, costed at `cost_usd`.
    pub fn from_outcome(o: &RequestOutcome, cost_usd: f64) -> Self {
        let served = o.served_or_last();
        let u = o.usage.unwrap_or_default();
        let attempts: Vec<StoredAttempt<'_>> = o
            .attempts
            .iter()
            .map(|a| StoredAttempt {
                provider: &a.provider,
                model: &a.model,
                outcome: a.outcome,
                status: a.status,
                latency_ms: a.latency.as_secs_f64() * 1000.0,
            })
            .collect();
        UsageRecord {
            record_id: crate::ids::uuid_v7(),
            request_id: o.request_id.clone(),
            parent_id: o.parent_id.clone(),
            started_at_ms: crate::time::unix_ms(o.started_at),
            caller: o.caller.clone(),
            project: o.project.clone(),
            team: o.team.clone(),
            environment: o.environment.clone(),
            client: o.client.to_string(),
            surface: o.surface.to_string(),
            group: o.group.clone(),
            provider: served.map(|a| a.provider.to_string()),
            model: served.map(|a| a.model.to_string()),
            status: match o.error_kind {
                None => "ok",
                Some(k @ ("quota_exceeded" | "budget_exceeded")) => k,
                Some(_) => "error",
            }
            .to_string(),
            http_status: i32::from(o.http_status),
            error_kind: o.error_kind.map(str::to_string),
            attempts: o.attempts.len() as i32,
            attempts_json: serde_json::to_string(&attempts).expect("attempts serialise"),
            fallback: o.fallback_used(),
            stream: o.stream,
            latency_ms: o.latency.as_secs_f64() * 1000.0,
            ttft_ms: o.ttft.map(|t| t.as_secs_f64() * 1000.0),
            input_tokens: u.input_tokens as i64,
            cached_tokens: u.cached_input_tokens as i64,
            cache_write_tokens: u.cache_write_tokens as i64,
            output_tokens: u.output_tokens as i64,
            reasoning_tokens: u.reasoning_tokens as i64,
            cost_usd,
            warnings: serde_json::to_string(&o.warnings).expect("strings serialise"),
            affinity_hit: o.affinity_hit,
            quota: o.quota.as_deref().map(str::to_string),
            config_hash: o.config_hash.to_string(),
            capture_policy: o.capture_policy.as_ref().map(|p| p.to_string()),
            rule: o.rule.as_deref().map(str::to_string),
            annotations: if o.annotations.is_empty() {
                empty_array()
            } else {
                let notes: Vec<StoredNote<'_>> = o
                    .annotations
                    .iter()
                    .map(|a| StoredNote {
                        stage: &a.stage,
                        note: &a.note,
                    })
                    .collect();
                serde_json::to_string(&notes).expect("notes serialise")
            },
        }
    }
}

/// Log-scale histogram bucket of a latency in ms (about 5% wide), stored with each record so
/// percentiles can be computed by the database with GROUP BY.
pub fn latency_bucket(ms: f64) -> i32 {
    ((ms.max(0.0) + 1.0).ln() / 1.05f64.ln()).floor() as i32
}

/// The representative latency (ms) of a bucket: its geometric middle.
pub fn bucket_value(bucket: i32) -> f64 {
    let lo = 1.05f64.powi(bucket) - 1.0;
    let hi = 1.05f64.powi(bucket + 1) - 1.0;
    ((lo + 1.0) * (hi + 1.0)).sqrt() - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_five_percent() {
        for ms in [0.5, 3.0, 42.0, 999.0, 12_345.0, 600_000.0] {
            let v = bucket_value(latency_bucket(ms));
            assert!((v - ms).abs() <= ms * 0.05 + 1.0, "{ms} -> {v}");
        }
    }

    #[test]
    fn cost_prices_cached_input_separately() {
        let p = Price {
            input: 2.0,
            cached_input: 0.5,
            output: 10.0,
        };
        let u = dialects::canonical::Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            output_tokens: 100_000,
            ..Default::default()
        };
        assert!((cost(Some(p), &u) - (1.2 + 0.2 + 1.0)).abs() < 1e-9);
        assert_eq!(cost(None, &u), 0.0);
    }
}
