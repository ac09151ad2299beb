//! The state every request shares. A [`Runtime`] is one configuration and what is built from
//! it (caller table, provider clients, governance stages, target health, session affinity, the
//! usage recorder); [`Live`] holds the runtime in force and swaps it atomically on a config
//! reload: a request keeps the runtime it started with to its end, new requests see the new
//! one. What outlives a configuration — the draining flag, target ids, the license state,
//! metrics series, the usage writer — is carried from one runtime to the next.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::license::LicenseState;
use crate::policy::limits::Limits;
use crate::policy::{Governance, Stage};
use crate::routing::{Affinity, Health, RoutingState};
use crate::upstream::Provider;
use crate::usage::Recorder;
use crate::usage::store::UsageStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `/version` reports about the build.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git commit the binary was built from.
    pub commit: &'static str,
    /// Build date (UTC, RFC 3339).
    pub build_date: &'static str,
}

impl Default for BuildInfo {
    fn default() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: "unknown",
            build_date: "unknown",
        }
    }
}

/// Everything a request handler needs, shared by all requests.
#[derive(Debug)]
pub struct Runtime {
    /// The validated configuration.
    pub config: Config,
    /// Token -> caller.
    pub auth: Authenticator,
    /// One client per provider, indexed like `config.providers`.
    pub providers: Vec<Provider>,
    /// Where finished request outcomes go.
    pub recorder: Arc<Recorder>,
    /// Per-target health.
    pub health: Health,
    /// The usage store, for reports (the writer has its own handle).
    pub store: Option<Arc<dyn UsageStore>>,
    /// Build metadata.
    pub build: BuildInfo,
    /// The governance stages and where they apply.
    pub governance: Governance,
    /// Quotas and budgets, when configured (their stages are in `governance`).
    pub limits: Option<Limits>,
    /// The license in force and this process's instance registration.
    pub license: Arc<LicenseState>,
    /// Session affinity (shared with the next runtime when its settings are the same).
    pub affinity: Arc<Affinity>,
    /// Governance stages given at construction (kept by reloads).
    extra_stages: Vec<Arc<dyn Stage>>,
    draining: Arc<AtomicBool>,
}

impl Runtime {
    /// Builds the runtime for a validated config.
    pub fn new(
        config: Config,
        recorder: Recorder,
        build: BuildInfo,
        store: Option<Arc<dyn UsageStore>>,
    ) -> Self {
        Self::with_governance(config, recorder, build, store, Vec::new())
    }

    /// Builds the runtime with governance stages (in the order requests pass them).
    pub fn with_governance(
        config: Config,
        recorder: Recorder,
        build: BuildInfo,
        store: Option<Arc<dyn UsageStore>>,
        stages: Vec<Arc<dyn Stage>>,
    ) -> Self {
        // Captured content goes to the store through one task (kept across reloads).
        let recorder = match (&store, recorder.captures()) {
            (Some(s), None) if tokio::runtime::Handle::try_current().is_ok() => {
                recorder.with_captures(crate::usage::capture::CaptureSink::spawn(s.clone()))
            }
            _ => recorder,
        };
        let providers = config.providers.iter().map(Provider::new).collect();
        let health = Health::new(config.target_count, &config.routing);
        let affinity = Arc::new(Affinity::new(
            config.routing.affinity_max_sessions,
            config.routing.affinity_ttl,
        ));
        Self::assemble(Parts {
            config,
            recorder,
            build,
            store,
            stages,
            providers,
            health,
            affinity,
            previous_limits: None,
            license: Arc::new(LicenseState::default()),
            draining: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The runtime of a reloaded `config` (its target ids given by [`crate::config::TargetIds`]),
    /// carrying over from `self` what outlives a configuration: metrics series, the usage writer
    /// and store, the license state, the draining flag, provider connection pools, the health of
    /// the targets that remain, session affinity (when its settings are unchanged), and quota and
    /// budget counts (when the limits backend is unchanged).
    pub fn reloaded(&self, config: Config) -> Self {
        let providers = config
            .providers
            .iter()
            .map(|p| {
                let previous = self
                    .config
                    .providers
                    .iter()
                    .position(|old| old.name == p.name)
                    .map(|i| &self.providers[i]);
                Provider::carried(p, previous)
            })
            .collect();
        let health = Health::carried(config.target_count, &config.routing, &self.health);
        let same_affinity = config.routing.affinity_max_sessions
            == self.config.routing.affinity_max_sessions
            && config.routing.affinity_ttl == self.config.routing.affinity_ttl;
        let affinity = if same_affinity {
            self.affinity.clone()
        } else {
            Arc::new(Affinity::new(
                config.routing.affinity_max_sessions,
                config.routing.affinity_ttl,
            ))
        };
        Self::assemble(Parts {
            recorder: self.recorder.reconfigured(&config),
            build: self.build.clone(),
            store: self.store.clone(),
            stages: self.extra_stages.clone(),
            providers,
            health,
            affinity,
            previous_limits: self.limits.as_ref(),
            license: self.license.clone(),
            draining: self.draining.clone(),
            config,
        })
    }

    fn assemble(p: Parts<'_>) -> Self {
        let Parts {
            config,
            recorder,
            build,
            store,
            stages,
            providers,
            health,
            affinity,
            previous_limits,
            license,
            draining,
        } = p;
        let auth = Authenticator::new(&config);
        let limits = (!config.limits.is_empty()).then(|| {
            Limits::carried(
                previous_limits,
                &config.limits,
                auth.callers(),
                &config.groups,
                store.clone(),
                recorder.metrics.limits(),
            )
            .expect("a validated limits backend URL opens")
        });
        // Quotas and budgets come first: a request over its limits is refused before other
        // stages spend work on it.
        let mut all: Vec<Arc<dyn Stage>> = limits.iter().map(Limits::stage).collect();
        // Then the group's routing rules, then external policies (which see the rule that
        // matched), then content: PII filtering, and capture of what PII filtering left.
        let governance_metrics = recorder.metrics.governance();
        all.extend(crate::policy::rules::RulesStage::all(
            &config.groups,
            &config.rule_schema,
            &governance_metrics,
        ));
        all.extend(crate::policy::external::PolicyStage::all(
            &config.policies,
            &governance_metrics,
        ));
        all.extend(crate::policy::pii::PiiStage::all(&config.pii_policies));
        all.extend(crate::policy::capture::CaptureStage::all(
            &config.capture_policies,
            &config.pii_policies,
        ));
        all.extend(stages.iter().cloned());
        let governance = Governance::new(all, auth.callers(), &config.groups);
        Runtime {
            store,
            health,
            affinity,
            auth,
            governance,
            limits,
            license,
            providers,
            recorder: Arc::new(recorder),
            build,
            config,
            extra_stages: stages,
            draining,
        }
    }

    /// The same runtime under `license` (default: unlicensed evaluation).
    pub fn with_license(mut self, license: Arc<LicenseState>) -> Self {
        self.license = license;
        self
    }

    /// What routing consults besides the config.
    pub fn routing_state(&self) -> RoutingState<'_> {
        RoutingState {
            health: &self.health,
            affinity: &self.affinity,
        }
    }

    /// Whether shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the start of shutdown (readiness fails from now on).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// What [`Runtime::assemble`] builds a runtime from.
struct Parts<'a> {
    config: Config,
    recorder: Recorder,
    build: BuildInfo,
    store: Option<Arc<dyn UsageStore>>,
    stages: Vec<Arc<dyn Stage>>,
    providers: Vec<Provider>,
    health: Health,
    affinity: Arc<Affinity>,
    previous_limits: Option<&'a Limits>,
    license: Arc<LicenseState>,
    draining: Arc<AtomicBool>,
}

/// The runtime a request is served by (the one in force when it arrived).
pub type AppState = Arc<Runtime>;
