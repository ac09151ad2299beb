//! The state every request shares: the validated config and what is built from it (caller
//! table, provider clients, governance stages), target health, session affinity, the usage
//! recorder and store, build metadata and the draining flag.

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
    /// Session affinity.
    pub affinity: Affinity,
    /// Build metadata.
    pub build: BuildInfo,
    /// The governance stages and where they apply.
    pub governance: Governance,
    /// Quotas and budgets, when configured (their stages are in `governance`).
    pub limits: Option<Limits>,
    /// The license in force and this process's instance registration.
    pub license: Arc<LicenseState>,
    draining: AtomicBool,
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
        let providers = config.providers.iter().map(Provider::new).collect();
        let auth = Authenticator::new(&config);
        let limits = (!config.limits.is_empty()).then(|| {
            Limits::new(
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
        all.extend(stages);
        let governance = Governance::new(all, auth.callers(), &config.groups);
        Runtime {
            store,
            health: Health::new(config.target_count, &config.routing),
            affinity: Affinity::new(
                config.routing.affinity_max_sessions,
                config.routing.affinity_ttl,
            ),
            auth,
            governance,
            limits,
            license: Arc::new(LicenseState::default()),
            providers,
            recorder: Arc::new(recorder),
            build,
            config,
            draining: AtomicBool::new(false),
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

/// Shared state handed to handlers.
pub type AppState = Arc<Runtime>;
