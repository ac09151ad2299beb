//! Configuration: one TOML file, parsed as [`raw::RawConfig`], then validated into [`Config`],
//! the only form the rest of the router sees. Validation reports every problem at once, each
//! with the path of its key.

mod callers;
pub mod capture;
mod error;
mod headers;
pub mod limits;
pub mod pii;
pub mod policies;
pub mod raw;
pub mod rules;
mod secret;
pub mod telemetry;
mod validate;

pub use error::{ConfigError, ConfigErrors, suggest};
pub use secret::{Secret, SecretError, SecretSource, hash_token, hash_token_hex, resolve_secret};
pub use validate::hex;
pub use validate::{parse, validate};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[routing]`.
    pub routing: RoutingConfig,
    /// Providers, in name order.
    pub providers: Vec<ProviderConfig>,
    /// Model groups, in name order.
    pub groups: Vec<GroupConfig>,
    /// Callers, in file order.
    pub callers: Vec<CallerConfig>,
    /// `[limits]`, `[[quotas]]`, `[[budgets]]`.
    pub limits: limits::LimitsConfig,
    /// `[license]`.
    pub license: LicenseConfig,
    /// `[telemetry]`.
    pub telemetry: telemetry::TelemetryConfig,
    /// `[[pii_policies]]`, in file order (the first that applies to a request is its policy).
    pub pii_policies: Vec<pii::PiiPolicyConfig>,
    /// `[[capture_policies]]`, in file order (the first that applies to a request is its policy).
    pub capture_policies: Vec<capture::CapturePolicyConfig>,
    /// `[[policies]]`, in file order (every one that applies is asked, in order).
    pub policies: Vec<policies::PolicyConfig>,
    /// What rules may read besides the fixed variables (listed headers, every target), and
    /// where each named target is (`rule_targets[i]` for the schema's key `i`).
    pub rule_schema: std::sync::Arc<crate::rules::Schema>,
    /// Positions of the schema's targets.
    pub rule_targets: Vec<rules::TargetRef>,
    /// Per group (by index), the schema indices of its targets.
    pub group_rule_targets: Vec<Vec<usize>>,
    /// Things that work but should be changed (inline secrets, ...).
    pub warnings: Vec<String>,
    /// SHA-256 (hex) of the file's bytes, shown by `/version`.
    pub hash: String,
    /// Number of distinct (provider, model) targets.
    pub target_count: usize,
}

impl Config {
    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.group_index(name).map(|i| &self.groups[i])
    }

    /// Index in `groups` of the group named `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups
            .binary_search_by(|g| g.name.as_str().cmp(name))
            .ok()
    }

    /// The target `provider/model`: in group `own` if it lists it, else in the first group
    /// (in name order) that does.
    pub fn target_by_label(&self, label: &str, own: usize) -> Option<rules::TargetRef> {
        let (provider, model) = label.split_once('/')?;
        let find = |gi: usize| {
            let g = self.groups.get(gi)?;
            let ti = g
                .targets
                .iter()
                .position(|t| t.model == model && self.providers[t.provider].name == provider)?;
            Some(rules::TargetRef {
                group: gi,
                target: ti,
            })
        };
        find(own).or_else(|| (0..self.groups.len()).find_map(find))
    }

    /// The target at `r`.
    pub fn target(&self, r: rules::TargetRef) -> &TargetConfig {
        &self.groups[r.group].targets[r.target]
    }

    /// `provider/model` of the target at `r`.
    pub fn target_label(&self, r: rules::TargetRef) -> String {
        let t = self.target(r);
        format!("{}/{}", self.providers[t.provider].name, t.model)
    }
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Default request budget.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// This router's name (`x-router-parent-id` upstream).
    pub name: String,
    /// Accept queue length (the kernel caps it at `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// Longest wait for a complete request head.
    pub header_read_timeout: Duration,
    /// Longest idle time of a keep-alive connection.
    pub idle_timeout: Duration,
    /// Most open client connections (`None`: derived from the file limit at start).
    pub max_connections: Option<usize>,
    /// This deployment's id (a license may be bound to it).
    pub deployment_id: Option<String>,
    /// Reload the config when its file changes (polled, debounced).
    pub watch_config: bool,
    /// Serve the web console at `/console`.
    pub console: bool,
    /// How long a console sign-in lasts.
    pub console_session_ttl: Duration,
}

/// `[license]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseConfig {
    /// The signed license file; `None`: unlicensed evaluation (every feature, one instance).
    pub path: Option<PathBuf>,
    /// How often a replica on a shared store refreshes its instance heartbeat; one whose
    /// heartbeat is older than three intervals no longer counts.
    pub heartbeat_interval: Duration,
}

/// `[routing]`, validated.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Most attempts per request.
    pub max_attempts: u32,
    /// Extra attempts at the same target.
    pub retries_per_target: u32,
    /// Backoff base between attempts at the same target.
    pub retry_backoff: Duration,
    /// Consecutive failures before cooldown.
    pub cooldown_after_failures: u32,
    /// Cooldown length.
    pub cooldown: Duration,
    /// Margin subtracted from the budget forwarded upstream.
    pub hop_margin: Duration,
    /// Exploration share of the latency strategy.
    pub latency_exploration: f64,
    /// Output tokens the cost strategy assumes.
    pub cost_assumed_output_tokens: u32,
    /// Session affinity TTL.
    pub affinity_ttl: Duration,
    /// Most sessions remembered.
    pub affinity_max_sessions: usize,
}

/// `[store]`, validated (used by the usage store).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`.
    pub url: String,
    /// Retention of usage records (0 keeps them forever).
    pub retention_days: u32,
    /// The usage writer's settings.
    pub writer: WriterConfig,
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records per batch.
    pub batch_size: usize,
    /// Longest a record waits before its batch is written.
    pub flush_interval: Duration,
    /// Queue capacity (records); when full, new records are dropped and counted.
    pub queue_capacity: usize,
    /// The spool file.
    pub spool_path: PathBuf,
    /// Largest spool; past it, records are dropped and counted (and readiness fails).
    pub spool_max_bytes: u64,
    /// How often a failed store is retried.
    pub retry_interval: Duration,
}

/// The provider kinds, each implemented by one module under `upstream/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI Chat Completions and every compatible server.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    OpenAiResponses,
}

impl ProviderKind {
    /// Every kind with its config spelling.
    pub const ALL: &'static [(&'static str, ProviderKind)] = &[
        ("openai", ProviderKind::OpenAi),
        ("anthropic", ProviderKind::Anthropic),
        ("openai-responses", ProviderKind::OpenAiResponses),
    ];

    /// The provider as OpenTelemetry's GenAI conventions name it (`gen_ai.provider.name`).
    pub fn gen_ai_name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi | ProviderKind::OpenAiResponses => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// `[providers.NAME]`, validated.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The provider's name.
    pub name: String,
    /// Its kind.
    pub kind: ProviderKind,
    /// Base URL as the provider's SDK takes it, without a trailing slash.
    pub base_url: String,
    /// The credential sent upstream.
    pub api_key: Option<Secret>,
    /// Extra headers for every request (values marked sensitive: `Debug` hides them).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for headers or between two body chunks.
    pub read_timeout: Duration,
    /// Largest whole response body read.
    pub max_response_bytes: usize,
    /// Largest stream event read.
    pub max_event_bytes: usize,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
}

/// How a group orders its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Random by weight.
    Weighted,
    /// First eligible in file order.
    Priority,
    /// Lowest recent time to first byte (EWMA), with a little exploration.
    Latency,
    /// Cheapest for the request's estimated tokens.
    Cost,
}

impl Strategy {
    /// Every strategy with its config spelling.
    pub const ALL: &'static [(&'static str, Strategy)] = &[
        ("weighted", Strategy::Weighted),
        ("priority", Strategy::Priority),
        ("latency", Strategy::Latency),
        ("cost", Strategy::Cost),
    ];
}

/// `[groups.NAME]`, validated.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Position in [`Config::groups`] (indexes per-group tables built at load).
    pub index: usize,
    /// The group's name (what callers put in `model`).
    pub name: String,
    /// Target ordering.
    pub strategy: Strategy,
    /// Groups tried after this one's targets.
    pub fallback_groups: Vec<String>,
    /// Request budget for this group.
    pub timeout: Option<Duration>,
    /// Most attempts for a request to this group.
    pub max_attempts: u32,
    /// Sessions stick to their last target.
    pub session_affinity: bool,
    /// The targets, in file order.
    pub targets: Vec<TargetConfig>,
    /// Routing rules, in file order (the first that matches decides).
    pub rules: Vec<rules::RuleConfig>,
}

/// What a target can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Function/tool calling.
    pub tools: bool,
    /// Image inputs.
    pub images: bool,
    /// JSON-schema structured output.
    pub json_schema: bool,
    /// Reasoning controls.
    pub reasoning: bool,
}

/// Prices in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Cached input.
    pub cached_input: f64,
    /// Output.
    pub output: f64,
}

/// One target of a group, validated.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Identity of the (provider, model) pair, shared by every group that lists it; indexes
    /// per-target health.
    pub id: usize,
    /// Index into [`Config::providers`].
    pub provider: usize,
    /// The upstream model.
    pub model: String,
    /// Weight for `weighted`; 0 disables.
    pub weight: u32,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Largest prompt in tokens.
    pub context_window: Option<u64>,
    /// Largest output the model takes; larger requests are clamped.
    pub max_output_tokens: Option<u32>,
    /// Prices.
    pub price: Option<Price>,
}

/// Target ids that stay the same across config reloads: one per (provider name, provider base
/// URL, model), handed out in order of first appearance. Per-target health and session
/// affinity are indexed by these ids, so a reloaded config keeps what was learned about the
/// targets it still has (a provider pointed at another URL is a new target).
#[derive(Debug, Default)]
pub struct TargetIds(HashMap<(String, String, String), usize>);

impl TargetIds {
    fn key(config: &Config, t: &TargetConfig) -> (String, String, String) {
        let p = &config.providers[t.provider];
        (p.name.clone(), p.base_url.clone(), t.model.clone())
    }

    /// The ids a freshly validated `config` carries.
    pub fn of(config: &Config) -> Self {
        let mut ids = HashMap::new();
        for t in config.groups.iter().flat_map(|g| &g.targets) {
            ids.insert(Self::key(config, t), t.id);
        }
        TargetIds(ids)
    }

    /// Gives `config`'s targets their ids: a known (provider, URL, model) keeps its id, a new
    /// one gets the next; `target_count` becomes one past the largest id ever given.
    pub fn assign(&mut self, config: &mut Config) {
        let keys: Vec<Vec<(String, String, String)>> = config
            .groups
            .iter()
            .map(|g| g.targets.iter().map(|t| Self::key(config, t)).collect())
            .collect();
        for (g, keys) in config.groups.iter_mut().zip(keys) {
            for (t, key) in g.targets.iter_mut().zip(keys) {
                let next = self.0.len();
                t.id = *self.0.entry(key).or_insert(next);
            }
        }
        config.target_count = self.0.len();
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    /// Model traffic.
    pub caller: bool,
    /// `/metrics`.
    pub metrics_admin: bool,
    /// Reports and exports.
    pub report_admin: bool,
    /// Everything.
    pub admin: bool,
}

/// `[[callers]]`, validated.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// Unique name.
    pub name: String,
    /// Project.
    pub project: Option<String>,
    /// Team.
    pub team: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Roles.
    pub roles: Roles,
    /// Allowed groups; `"*"` allows all.
    pub groups: Vec<String>,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
}
