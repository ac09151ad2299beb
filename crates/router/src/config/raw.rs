//! The configuration file as written: TOML parsed into plain structs. Enumerations stay strings
//! here so that `validate` can report every bad value at once, with a suggestion.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
    /// `[routing]`.
    #[serde(default)]
    pub routing: RawRouting,
    /// `[providers.NAME]`.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// `[groups.NAME]`.
    #[serde(default)]
    pub groups: BTreeMap<String, RawGroup>,
    /// `[[callers]]`.
    #[serde(default)]
    pub callers: Vec<RawCaller>,
    /// `[limits]`.
    #[serde(default)]
    pub limits: super::limits::RawLimits,
    /// `[[quotas]]`.
    #[serde(default)]
    pub quotas: Vec<super::limits::RawQuota>,
    /// `[[budgets]]`.
    #[serde(default)]
    pub budgets: Vec<super::limits::RawBudget>,
    /// `[license]`.
    #[serde(default)]
    pub license: Option<RawLicense>,
    /// `[[pii_policies]]`.
    #[serde(default)]
    pub pii_policies: Vec<super::pii::RawPiiPolicy>,
    /// `[[capture_policies]]`.
    #[serde(default)]
    pub capture_policies: Vec<super::capture::RawCapturePolicy>,
    /// Request headers routing rules and policies may read (`headers["x-region"]`).
    #[serde(default)]
    pub rules_headers: Vec<String>,
    /// `[[policies]]`: external policy services.
    #[serde(default)]
    pub policies: Vec<super::policies::RawPolicy>,
    /// `[telemetry]`: OpenTelemetry traces.
    #[serde(default)]
    pub telemetry: super::telemetry::RawTelemetry,
}

/// `[license]`.
#[derive(Debug, Deserialize)]
pub struct RawLicense {
    /// The signed `license.json` (relative paths: to the working directory); none: unlicensed
    /// evaluation.
    #[serde(default)]
    pub path: Option<String>,
    /// How often replicas sharing a PostgreSQL store refresh their instance heartbeat.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval_ms: u64,
}

fn default_heartbeat_interval() -> u64 {
    5000
}

/// `[server]`.
#[derive(Debug, Deserialize)]
pub struct RawServer {
    /// Listen address, `host:port`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body accepted.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Default budget of one request.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_ms: u64,
    /// This router's name, sent upstream as `x-router-parent-id`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Connections the kernel queues before they are accepted.
    #[serde(default = "default_backlog")]
    pub listen_backlog: u32,
    /// Longest a connection may take to send a complete request head (from its accept, or
    /// from the end of its previous response).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// Longest a keep-alive connection may sit idle between requests.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Most open client connections; 0 derives it from the process's file limit.
    #[serde(default)]
    pub max_connections: usize,
    /// This deployment's id, matched against a license's `deployment_id`.
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Reload the config when its file changes.
    #[serde(default)]
    pub watch_config: bool,
    /// Serve the web console at `/console`.
    #[serde(default = "default_console")]
    pub console: bool,
    /// How long a console sign-in lasts.
    #[serde(default = "default_console_session")]
    pub console_session_ttl_ms: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            max_body_bytes: default_max_body(),
            request_timeout_ms: default_request_timeout(),
            drain_timeout_ms: default_drain_timeout(),
            name: default_name(),
            listen_backlog: default_backlog(),
            header_read_timeout_ms: default_header_read_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_connections: 0,
            deployment_id: None,
            watch_config: false,
            console: true,
            console_session_ttl_ms: default_console_session(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_console() -> bool {
    true
}
fn default_console_session() -> u64 {
    8 * 3_600_000
}
fn default_backlog() -> u32 {
    4096
}
fn default_header_read_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_max_body() -> u64 {
    32 * 1024 * 1024
}
fn default_request_timeout() -> u64 {
    600_000
}
fn default_drain_timeout() -> u64 {
    30_000
}
fn default_name() -> String {
    "smart-router".into()
}

/// `[routing]`: retries, health and affinity, for every group.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawRouting {
    /// Most attempts one request makes, over all targets.
    pub max_attempts: u32,
    /// Extra attempts at the same target after a retryable failure (before moving on).
    pub retries_per_target: u32,
    /// Base of the exponential backoff (full jitter) between attempts at the same target.
    pub retry_backoff_ms: u64,
    /// Consecutive retryable failures that put a target into cooldown.
    pub cooldown_after_failures: u32,
    /// How long a target cools down.
    pub cooldown_ms: u64,
    /// Subtracted from the remaining budget sent upstream as `x-router-timeout-ms`.
    pub hop_margin_ms: u64,
    /// Share of `latency`-strategy requests that try a random target first (0..1).
    pub latency_exploration: f64,
    /// Output tokens assumed by the `cost` strategy when a request sets no maximum.
    pub cost_assumed_output_tokens: u32,
    /// How long a session sticks to its target after its last request.
    pub affinity_ttl_ms: u64,
    /// Most sessions remembered.
    pub affinity_max_sessions: usize,
}

impl Default for RawRouting {
    fn default() -> Self {
        RawRouting {
            max_attempts: 4,
            retries_per_target: 0,
            retry_backoff_ms: 100,
            cooldown_after_failures: 3,
            cooldown_ms: 30_000,
            hop_margin_ms: 100,
            latency_exploration: 0.05,
            cost_assumed_output_tokens: 512,
            affinity_ttl_ms: 3_600_000,
            affinity_max_sessions: 100_000,
        }
    }
}

/// `[store]`.
#[derive(Debug, Deserialize)]
pub struct RawStore {
    /// `sqlite://PATH` or `postgres://...`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Usage records older than this are purged.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Where records wait while the store is unreachable.
    #[serde(default = "default_spool_path")]
    pub spool_path: String,
    /// Largest spool.
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    /// Records per insert batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest a record waits before its batch is written.
    #[serde(default = "default_flush")]
    pub flush_interval_ms: u64,
    /// Capacity of the writer's queue.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            url: default_store_url(),
            retention_days: default_retention(),
            spool_path: default_spool_path(),
            spool_max_bytes: default_spool_max(),
            batch_size: default_batch(),
            flush_interval_ms: default_flush(),
            queue_capacity: default_queue(),
        }
    }
}

fn default_spool_path() -> String {
    "smart-router-usage.spool".into()
}
fn default_spool_max() -> u64 {
    1 << 30
}
fn default_batch() -> usize {
    1000
}
fn default_flush() -> u64 {
    200
}
fn default_queue() -> usize {
    65_536
}

fn default_store_url() -> String {
    "sqlite://smart-router.db".into()
}
fn default_retention() -> u32 {
    90
}

/// `[providers.NAME]`.
#[derive(Debug, Deserialize)]
pub struct RawProvider {
    /// `openai` | `openai-responses` | `anthropic`.
    pub kind: String,
    /// What the provider's own SDK takes as base URL.
    pub base_url: String,
    /// `env:NAME`, `file:/path`, or inline.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra headers sent with every request to this provider; values may be `env:NAME` or
    /// `file:/path` references like `api_key`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Longest wait for response headers or between two body chunks.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Largest whole (non-stream) response body read from the provider.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Largest single stream event (or unfinished line) read from the provider.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: u64,
    /// How long an idle pooled connection to the provider is kept.
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout_ms: u64,
}

fn default_connect_timeout() -> u64 {
    10_000
}
fn default_read_timeout() -> u64 {
    300_000
}
fn default_max_response_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_event_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_pool_idle_timeout() -> u64 {
    90_000
}

/// `[groups.NAME]`.
#[derive(Debug, Deserialize)]
pub struct RawGroup {
    /// `weighted` | `priority` | `latency` | `cost`.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Groups tried after this group's own targets.
    #[serde(default)]
    pub fallback_groups: Vec<String>,
    /// Budget of a request to this group (instead of `server.request_timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most attempts for a request to this group (instead of `routing.max_attempts`).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// `none` or `session`: keep a session on the target it used last.
    #[serde(default = "default_affinity")]
    pub affinity: String,
    /// `[[groups.NAME.targets]]`.
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    /// `[[groups.NAME.rules]]`: routing rules, first match wins.
    #[serde(default)]
    pub rules: Vec<super::rules::RawRule>,
}

fn default_affinity() -> String {
    "none".into()
}

fn default_strategy() -> String {
    "weighted".into()
}

/// `[[groups.NAME.targets]]`.
#[derive(Debug, Deserialize)]
pub struct RawTarget {
    /// Name of a `[providers.NAME]`.
    pub provider: String,
    /// The upstream model.
    pub model: String,
    /// Relative weight for `weighted`; 0 disables the target.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// `tools`, `images`, `json_schema`, `reasoning`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Largest prompt, in tokens, the model takes.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Largest output, in tokens, the model takes (larger requests are clamped).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// USD per million tokens.
    #[serde(default)]
    pub price: Option<RawPrice>,
}

fn default_weight() -> u32 {
    1
}

/// `price = { input, cached_input, output }`, USD per million tokens.
#[derive(Debug, Deserialize)]
pub struct RawPrice {
    /// Uncached input.
    pub input: f64,
    /// Cached input; defaults to `input`.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Output.
    pub output: f64,
}

/// `[[callers]]`.
#[derive(Debug, Deserialize)]
pub struct RawCaller {
    /// Unique name.
    pub name: String,
    /// Project, for reports.
    #[serde(default)]
    pub project: Option<String>,
    /// Team, for reports.
    #[serde(default)]
    pub team: Option<String>,
    /// Environment (`prod`, `dev`, ...), for reports.
    #[serde(default)]
    pub environment: Option<String>,
    /// `caller` | `metrics-admin` | `report-admin` | `admin`.
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// Groups this caller may use; `"*"` means all.
    #[serde(default)]
    pub groups: Vec<String>,
    /// SHA-256 of the token, hex.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The plain token as `env:NAME` / `file:/path` (hashed at load).
    #[serde(default)]
    pub token: Option<String>,
}

fn default_roles() -> Vec<String> {
    vec!["caller".into()]
}
