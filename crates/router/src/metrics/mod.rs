//! Prometheus metrics. Labels are limited to surface, configured group, provider, model, status
//! class and low-cardinality kinds: never a caller, project, team, token or request id, and a
//! group name the config does not declare is counted as `unknown` (callers cannot mint series).
//! Label values are interned `Arc<str>`s or static strings, so counting a request copies none.

use crate::outcome::RequestOutcome;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Labels of request-level series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Client dialect.
    pub surface: &'static str,
    /// Model group.
    pub group: Arc<str>,
    /// Provider that served (or `none`).
    pub provider: Arc<str>,
    /// Upstream model that served (or `none`).
    pub model: Arc<str>,
    /// `2xx`, `4xx`, `5xx`, `client_closed`.
    pub status: &'static str,
}

/// Labels of attempt-level series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// Provider.
    pub provider: Arc<str>,
    /// Upstream model.
    pub model: Arc<str>,
    /// `ok` or the error class.
    pub outcome: &'static str,
}

/// Labels of error series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Client dialect.
    pub surface: &'static str,
    /// Model group.
    pub group: Arc<str>,
    /// Error class.
    pub kind: &'static str,
}

/// Labels of token series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Model group.
    pub group: Arc<str>,
    /// Provider.
    pub provider: Arc<str>,
    /// Upstream model.
    pub model: Arc<str>,
    /// `input`, `cached`, `cache_write`, `output`, `reasoning`.
    pub kind: &'static str,
}

/// Labels of per-target series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Provider.
    pub provider: Arc<str>,
    /// Upstream model.
    pub model: Arc<str>,
}

/// Labels of per-surface series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SurfaceLabels {
    /// Client dialect.
    pub surface: &'static str,
}

/// Labels of connection closes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// `header_timeout`, `idle_timeout` or `evicted`.
    pub reason: &'static str,
}

/// Labels of quota and budget decisions (operator-defined names; never a caller).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    /// The quota or budget name.
    pub quota: Arc<str>,
    /// `rejected`, `would_reject` or `warned`.
    pub outcome: &'static str,
}

/// Labels of the license series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LicenseLabels {
    /// The license's id (`none` when unlicensed).
    pub license_id: String,
    /// Its status word (`licensed`, `grace`, `expired`, `unlicensed`, `invalid`).
    pub status: &'static str,
}

/// The metrics quotas and budgets keep (handles shared with the registry).
#[derive(Debug, Clone)]
pub struct LimitsMetrics {
    /// Decisions by quota/budget name and outcome (`rejected`, `would_reject`, `warned`).
    pub decisions: Family<QuotaLabels, Counter>,
    /// 1 while the limits backend answers.
    pub backend_up: Gauge,
}

/// Labels of routing-rule outcomes (operator-defined names).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The group the rule belongs to.
    pub group: Arc<str>,
    /// The rule's name.
    pub rule: Arc<str>,
    /// `matched`, `shadow_matched` or `error`.
    pub outcome: &'static str,
}

/// Labels of external-policy decisions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// The policy's name.
    pub policy: Arc<str>,
    /// `allow`, `deny`, `route`, `error` (no usable decision).
    pub outcome: &'static str,
    /// `service` (asked), `cache` (a cached decision) or `breaker` (not asked: breaker open).
    pub source: &'static str,
    /// `enforce` or `shadow`.
    pub mode: &'static str,
}

/// Labels naming one policy.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyNameLabels {
    /// The policy's name.
    pub policy: Arc<str>,
}

/// The metrics routing rules and external policies keep (handles shared with the registry).
#[derive(Debug, Clone)]
pub struct GovernanceMetrics {
    /// Rule outcomes by group, rule and outcome.
    pub rules: Family<RuleLabels, Counter>,
    /// Policy decisions.
    pub policies: Family<PolicyLabels, Counter>,
    /// Time a policy service took to answer.
    pub policy_duration: Family<PolicyNameLabels, Histogram>,
    /// 1 while a policy's circuit breaker is open.
    pub policy_circuit_open: Family<PolicyNameLabels, Gauge>,
}

/// Labels of per-group series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// Client dialect.
    pub surface: &'static str,
    /// Model group.
    pub group: Arc<str>,
}

/// A metric whose `# HELP` and `# TYPE` lines are written even before it has a series (the
/// registry skips empty label families otherwise), so dashboards and `/metrics` readers see
/// every metric the router has from its first scrape.
#[derive(Debug)]
struct Described<M>(M);

impl<M: EncodeMetric> EncodeMetric for Described<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// Registers `metric` (described even while empty).
fn described(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help, Described(metric));
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ]
    .into_iter()
}

/// Every metric the router exports. Clones share every series (a reloaded config's
/// [`Metrics::reconfigured`] keeps counting where the old one was).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
    ttft: Family<GroupLabels, Histogram>,
    overhead: Family<SurfaceLabels, Histogram>,
    attempts: Family<AttemptLabels, Counter>,
    fallbacks: Family<GroupLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<TargetLabels, Counter<f64, AtomicU64>>,
    /// Requests being served.
    pub in_flight: Gauge,
    /// Usage records waiting in the writer's queue.
    pub usage_queue_depth: Gauge,
    /// Usage records dropped.
    pub usage_dropped: Gauge,
    /// Usage records written.
    pub usage_written: Gauge,
    /// Bytes in the usage spool.
    pub usage_spool_bytes: Gauge,
    /// 1 when the usage store answers.
    pub usage_store_up: Gauge,
    /// 1 per target cooling down.
    pub target_cooling: Family<TargetLabels, Gauge>,
    /// Usage spool lines that could not be read back (set to the writer's count).
    pub usage_spool_rejected: Gauge,
    /// Open client connections.
    pub connections_open: Gauge,
    /// Client connections the router closed, by reason.
    connections_closed: Family<CloseLabels, Counter>,
    /// Quota and budget decisions.
    quota_decisions: Family<QuotaLabels, Counter>,
    /// 1 while the limits backend answers.
    limits_backend_up: Gauge,
    /// Rule and policy series.
    governance: GovernanceMetrics,
    /// Config reloads that took effect.
    pub config_reloads: Counter,
    /// Config reloads refused (the old config stayed in force).
    pub config_reload_failures: Counter,
    /// Seconds until the license expires (negative once past), when there is one.
    license_expiry: Family<LicenseLabels, Gauge>,
    /// 1 while the license is valid (licensed or in grace), one series with its status.
    license_valid: Family<LicenseLabels, Gauge>,
    /// Configured group names, interned.
    groups: HashMap<String, Arc<str>>,
    /// `none` and `unknown`, interned.
    none: Arc<str>,
    unknown: Arc<str>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry for `config`'s groups.
    pub fn for_config(config: &crate::config::Config) -> Self {
        let mut m = Self::new();
        m.groups = config
            .groups
            .iter()
            .map(|g| (g.name.clone(), Arc::from(g.name.as_str())))
            .collect();
        m
    }

    /// The same series, labelling groups by `config`'s names (for a reloaded config).
    pub fn reconfigured(&self, config: &crate::config::Config) -> Self {
        let mut m = self.clone();
        m.groups = config
            .groups
            .iter()
            .map(|g| (g.name.clone(), Arc::from(g.name.as_str())))
            .collect();
        m
    }

    /// A fresh registry with every metric registered and no groups declared.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("smart_router");
        let requests = Family::<RequestLabels, Counter>::default();
        described(
            &mut registry,
            "requests",
            "Requests answered",
            requests.clone(),
        );
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        described(
            &mut registry,
            "request_duration_seconds",
            "Time from request to the end of the response",
            duration.clone(),
        );
        let ttft = Family::<GroupLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        described(
            &mut registry,
            "time_to_first_byte_seconds",
            "Time from request to the first response byte",
            ttft.clone(),
        );
        let overhead = Family::<SurfaceLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
            ])
        });
        described(
            &mut registry,
            "overhead_seconds",
            "Time spent in the router before the response head went out, upstream waits excluded",
            overhead.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        described(
            &mut registry,
            "attempts",
            "Upstream attempts by outcome",
            attempts.clone(),
        );
        let fallbacks = Family::<GroupLabels, Counter>::default();
        described(
            &mut registry,
            "fallbacks",
            "Requests served by a target other than the first tried",
            fallbacks.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        described(
            &mut registry,
            "errors",
            "Failed requests by error class",
            errors.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        described(&mut registry, "tokens", "Tokens by kind", tokens.clone());
        let cost = Family::<TargetLabels, Counter<f64, AtomicU64>>::default();
        described(
            &mut registry,
            "cost_usd",
            "Cost in USD from the targets' prices",
            cost.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            described(registry, name, help, g.clone());
            g
        };
        let in_flight = gauge(&mut registry, "in_flight_requests", "Requests being served");
        let usage_queue_depth = gauge(
            &mut registry,
            "usage_queue_depth",
            "Usage records waiting to be written",
        );
        let usage_dropped = gauge(
            &mut registry,
            "usage_dropped_records",
            "Usage records dropped (queue or spool full)",
        );
        let usage_written = gauge(
            &mut registry,
            "usage_written_records",
            "Usage records written to the store",
        );
        let usage_spool_bytes = gauge(
            &mut registry,
            "usage_spool_bytes",
            "Bytes waiting in the usage spool",
        );
        let usage_store_up = gauge(
            &mut registry,
            "usage_store_up",
            "1 when the usage store answers",
        );
        let usage_spool_rejected = gauge(
            &mut registry,
            "usage_spool_rejected_lines",
            "Usage spool lines that could not be read back (kept aside in SPOOL.rejected)",
        );
        let connections_open = gauge(&mut registry, "connections_open", "Open client connections");
        let connections_closed = Family::<CloseLabels, Counter>::default();
        described(
            &mut registry,
            "connections_closed",
            "Client connections closed by the router (header_timeout, idle_timeout, evicted at the connection cap)",
            connections_closed.clone(),
        );
        let quota_decisions = Family::<QuotaLabels, Counter>::default();
        described(
            &mut registry,
            "quota_decisions",
            "Quota and budget decisions by name: rejected, would_reject (shadow mode), warned (budget past warn_at)",
            quota_decisions.clone(),
        );
        let limits_backend_up = gauge(
            &mut registry,
            "limits_backend_up",
            "1 while the limits backend (memory, or Redis) answers",
        );
        limits_backend_up.set(1);
        let governance = GovernanceMetrics {
            rules: Family::default(),
            policies: Family::default(),
            policy_duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ])
            }),
            policy_circuit_open: Family::default(),
        };
        described(
            &mut registry,
            "rule_evaluations",
            "Routing rule outcomes by group and rule: matched, shadow_matched (shadow mode), error",
            governance.rules.clone(),
        );
        described(
            &mut registry,
            "policy_decisions",
            "External policy decisions by policy, outcome (allow, deny, route, error), source (service, cache, breaker) and mode",
            governance.policies.clone(),
        );
        described(
            &mut registry,
            "policy_duration_seconds",
            "Time an external policy service took to answer (timeouts included)",
            governance.policy_duration.clone(),
        );
        described(
            &mut registry,
            "policy_circuit_open",
            "1 while a policy's circuit breaker is open (the service is not asked; on_error applies)",
            governance.policy_circuit_open.clone(),
        );
        let config_reloads = Counter::default();
        described(
            &mut registry,
            "config_reloads",
            "Config reloads that took effect",
            config_reloads.clone(),
        );
        let config_reload_failures = Counter::default();
        described(
            &mut registry,
            "config_reload_failures",
            "Config reloads refused (invalid config or license); the old config stayed in force",
            config_reload_failures.clone(),
        );
        let license_expiry = Family::<LicenseLabels, Gauge>::default();
        described(
            &mut registry,
            "license_expiry_seconds",
            "Seconds until the license's expires_at (negative once past; absent when unlicensed)",
            license_expiry.clone(),
        );
        let license_valid = Family::<LicenseLabels, Gauge>::default();
        described(
            &mut registry,
            "license_valid",
            "1 while the license is licensed or in grace, 0 when expired or unlicensed; labelled with its status",
            license_valid.clone(),
        );
        let target_cooling = Family::<TargetLabels, Gauge>::default();
        described(
            &mut registry,
            "target_cooling",
            "1 while a target cools down",
            target_cooling.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            requests,
            duration,
            ttft,
            overhead,
            attempts,
            fallbacks,
            errors,
            tokens,
            cost,
            in_flight,
            usage_queue_depth,
            usage_dropped,
            usage_written,
            usage_spool_bytes,
            usage_store_up,
            target_cooling,
            usage_spool_rejected,
            connections_open,
            connections_closed,
            quota_decisions,
            limits_backend_up,
            governance,
            config_reloads,
            config_reload_failures,
            license_expiry,
            license_valid,
            groups: HashMap::new(),
            none: Arc::from("none"),
            unknown: Arc::from("unknown"),
        }
    }

    /// The label of a group name: itself when configured, else `unknown` (`none` when the
    /// request never named one).
    fn group_label(&self, group: Option<&str>) -> Arc<str> {
        match group {
            None => self.none.clone(),
            Some(g) => self.groups.get(g).unwrap_or(&self.unknown).clone(),
        }
    }

    /// The handles the quotas and budgets count with.
    pub fn limits(&self) -> LimitsMetrics {
        LimitsMetrics {
            decisions: self.quota_decisions.clone(),
            backend_up: self.limits_backend_up.clone(),
        }
    }

    /// The handles routing rules and external policies count with.
    pub fn governance(&self) -> GovernanceMetrics {
        self.governance.clone()
    }

    /// Sets the license series (at each scrape): the license's id (`None`: unlicensed), its
    /// status word, whether it is valid, and the seconds until it expires.
    pub fn set_license(
        &self,
        license_id: Option<&str>,
        status: &'static str,
        valid: bool,
        expires_in: Option<i64>,
    ) {
        let labels = LicenseLabels {
            license_id: license_id.unwrap_or("none").to_string(),
            status,
        };
        self.license_valid.clear();
        self.license_valid
            .get_or_create(&labels)
            .set(i64::from(valid));
        self.license_expiry.clear();
        if let Some(secs) = expires_in {
            self.license_expiry.get_or_create(&labels).set(secs);
        }
    }

    /// Counts `n` client connections the router closed for `reason`.
    pub fn connections_closed(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.connections_closed
                .get_or_create(&CloseLabels { reason })
                .inc_by(n);
        }
    }

    /// Counts a finished request.
    pub fn observe(&self, o: &RequestOutcome, cost_usd: f64) {
        let served = o.served();
        let status = match o.http_status {
            499 => "client_closed",
            s if s < 300 && o.error_kind.is_none() => "2xx",
            s if s < 300 => "stream_error",
            s if s < 500 => "4xx",
            _ => "5xx",
        };
        let group = self.group_label(o.group.as_deref());
        let labels = RequestLabels {
            surface: o.surface,
            group: group.clone(),
            provider: served.map_or_else(|| self.none.clone(), |a| a.provider.clone()),
            model: served.map_or_else(|| self.none.clone(), |a| a.model.clone()),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(o.latency.as_secs_f64());
        let gl = GroupLabels {
            surface: o.surface,
            group: group.clone(),
        };
        if let Some(t) = o.ttft {
            self.ttft.get_or_create(&gl).observe(t.as_secs_f64());
        }
        if let Some(t) = o.overhead {
            self.overhead
                .get_or_create(&SurfaceLabels { surface: o.surface })
                .observe(t.as_secs_f64());
        }
        if o.fallback_used() {
            self.fallbacks.get_or_create(&gl).inc();
        }
        if let Some(kind) = o.error_kind {
            self.errors
                .get_or_create(&ErrorLabels {
                    surface: o.surface,
                    group: group.clone(),
                    kind,
                })
                .inc();
        }
        for a in &o.attempts {
            self.attempts
                .get_or_create(&AttemptLabels {
                    provider: a.provider.clone(),
                    model: a.model.clone(),
                    outcome: a.outcome,
                })
                .inc();
        }
        if let (Some(a), Some(u)) = (served, o.usage) {
            for (kind, n) in [
                ("input", u.input_tokens),
                ("cached", u.cached_input_tokens),
                ("cache_write", u.cache_write_tokens),
                ("output", u.output_tokens),
                ("reasoning", u.reasoning_tokens),
            ] {
                if n > 0 {
                    let l = TokenLabels {
                        group: group.clone(),
                        provider: a.provider.clone(),
                        model: a.model.clone(),
                        kind,
                    };
                    self.tokens.get_or_create(&l).inc_by(n);
                }
            }
            if cost_usd > 0.0 {
                self.cost
                    .get_or_create(&TargetLabels {
                        provider: a.provider.clone(),
                        model: a.model.clone(),
                    })
                    .inc_by(cost_usd);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
