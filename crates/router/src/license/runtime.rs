//! The license while the router runs: its status at the (injectable) clock's now, the daily
//! expiry warning, what `/admin/license`, `/version` and the metrics show, and this process's
//! place in the instance registry of a shared store (register, heartbeat, deregister).
//!
//! Nothing here ever stops traffic: past grace a running router keeps serving; a store that
//! does not answer only delays registration.

use super::{Feature, License, Status, rfc3339};
use crate::usage::store::{Instance, StoreError, UsageStore};
use arc_swap::ArcSwapOption;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// The time license dates are compared with (tests inject their own).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The operating system's clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// Why this process may not join the instances on its store.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `max_instances` others are live.
    #[error("{what} allows {max} instance(s) on this usage store, and {} live: {}; stop one, or wait for a stopped one's heartbeat to go stale ({stale_ms} ms without one)", live.len(), describe(live))]
    Full {
        /// The license (or unlicensed evaluation).
        what: String,
        /// The limit.
        max: u32,
        /// The live instances.
        live: Vec<Instance>,
        /// After how long without a heartbeat an instance stops counting.
        stale_ms: i64,
    },
    /// The store did not answer.
    #[error("the usage store did not answer instance registration: {0}")]
    Store(#[from] StoreError),
}

fn describe(live: &[Instance]) -> String {
    live.iter()
        .map(|i| {
            format!(
                "{} on {} (started {}, last seen {})",
                i.instance_id,
                i.hostname,
                crate::time::rfc3339_ms(i.started_at_ms),
                crate::time::rfc3339_ms(i.last_seen_ms)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A warning about the license, due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `true`: past grace (an error, not just a warning).
    pub expired: bool,
    /// What the operator reads.
    pub message: String,
}

/// The license a running router holds, and its instance registration.
pub struct LicenseState {
    /// Swapped when a reloaded config brings another license.
    license: ArcSwapOption<License>,
    clock: Clock,
    me: Instance,
    /// The shared store instances register in (PostgreSQL), with the heartbeat interval.
    registry: Option<(Arc<dyn UsageStore>, Duration)>,
    /// The UTC day a warning was last given (once a day).
    warned_day: AtomicI64,
}

impl std::fmt::Debug for LicenseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseState")
            .field("license", &self.license().map(|l| l.license_id.clone()))
            .field("instance", &self.me.instance_id)
            .field("registry", &self.registry.is_some())
            .finish()
    }
}

impl Default for LicenseState {
    /// Unlicensed evaluation on the system clock, counted nowhere.
    fn default() -> Self {
        Self::new(None, system_clock())
    }
}

impl LicenseState {
    /// The state of `license` (`None`: unlicensed evaluation) on `clock`.
    pub fn new(license: Option<License>, clock: Clock) -> Self {
        let now = crate::time::now_ms();
        LicenseState {
            license: ArcSwapOption::from(license.map(Arc::new)),
            clock,
            me: Instance {
                instance_id: crate::ids::uuid_v7(),
                hostname: super::hostname(),
                started_at_ms: now,
                last_seen_ms: now,
            },
            registry: None,
            warned_day: AtomicI64::new(i64::MIN),
        }
    }

    /// Counts this process among the instances of `store` when it is shared between
    /// processes (PostgreSQL); a store of one process (SQLite) is not counted.
    pub fn with_registry(mut self, store: Arc<dyn UsageStore>, heartbeat: Duration) -> Self {
        if store.shared() {
            self.registry = Some((store, heartbeat));
        }
        self
    }

    /// The license in force (`None`: unlicensed evaluation).
    pub fn license(&self) -> Option<Arc<License>> {
        self.license.load_full()
    }

    /// Puts `license` in force (a reloaded config's; `None`: unlicensed evaluation). The
    /// instance registration stays as it is.
    pub fn replace(&self, license: Option<License>) {
        self.license.store(license.map(Arc::new));
    }

    /// This process as the registry knows it.
    pub fn instance(&self) -> &Instance {
        &self.me
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.license()
            .map_or(Status::Unlicensed, |l| l.status(self.now()))
    }

    /// Whether `feature` may be used: always when unlicensed (evaluation), else when the
    /// license includes it (whatever its dates: expiry never turns a feature off).
    pub fn allows(&self, feature: Feature) -> bool {
        self.license().is_none_or(|l| l.has(feature))
    }

    /// Most live instances on a shared store (unlicensed evaluation: one).
    pub fn max_instances(&self) -> u32 {
        self.license().map_or(1, |l| l.max_instances)
    }

    /// What the instance limit is counted for, in messages.
    fn what(&self) -> String {
        match self.license() {
            Some(l) => format!("license {}", l.license_id),
            None => "unlicensed evaluation (install a license.json for more replicas)".into(),
        }
    }

    /// After how long without a heartbeat an instance stops counting (three intervals).
    fn stale_ms(&self) -> i64 {
        self.registry
            .as_ref()
            .map_or(0, |(_, every)| 3 * every.as_millis() as i64)
    }

    /// Joins the live instances of the shared store, unless that would exceed the limit.
    /// Without a shared store there is nothing to count.
    pub async fn register(&self) -> Result<(), RegisterError> {
        let Some((store, _)) = &self.registry else {
            return Ok(());
        };
        let now = crate::time::now_ms();
        let me = Instance {
            last_seen_ms: now,
            ..self.me.clone()
        };
        let max = self.max_instances();
        let live = store
            .register_instance(&me, max, now - self.stale_ms())
            .await?;
        if live.is_empty() {
            Ok(())
        } else {
            Err(RegisterError::Full {
                what: self.what(),
                max,
                live,
                stale_ms: self.stale_ms(),
            })
        }
    }

    /// The live instances of the shared store (`None`: not counted here).
    pub async fn live_instances(&self) -> Option<Result<Vec<Instance>, StoreError>> {
        let (store, _) = self.registry.as_ref()?;
        Some(
            store
                .live_instances(crate::time::now_ms() - self.stale_ms())
                .await,
        )
    }

    /// The warning due now, at most once per UTC day (by the injected clock): in the last 30
    /// days before expiry, in grace, and past grace.
    pub fn warning(&self) -> Option<Warning> {
        let l = self.license()?;
        let now = self.now();
        let day = crate::time::unix_ms(now).div_euclid(86_400_000);
        let warning = match l.status(now) {
            Status::Licensed if l.expiry_near(now) => Warning {
                expired: false,
                message: format!(
                    "license {} for {} expires on {} (in {} days); install a renewed license.json before then",
                    l.license_id,
                    l.customer,
                    rfc3339(l.expires_at),
                    l.expires_in(now).div_euclid(86_400)
                ),
            },
            Status::Grace => Warning {
                expired: false,
                message: format!(
                    "license {} expired on {}; its grace period ends on {} (everything works until then); install a renewed license.json",
                    l.license_id,
                    rfc3339(l.expires_at),
                    rfc3339(l.grace_end())
                ),
            },
            Status::Expired => Warning {
                expired: true,
                message: format!(
                    "license {} expired on {} and its grace period ended on {}: this router keeps serving, but it will not start again or load a new config with this license; install a renewed license.json",
                    l.license_id,
                    rfc3339(l.expires_at),
                    rfc3339(l.grace_end())
                ),
            },
            _ => return None,
        };
        (self.warned_day.swap(day, Ordering::Relaxed) != day).then_some(warning)
    }

    /// What `GET /admin/license` answers, with the live instances when counted.
    pub fn report(&self, live: Option<Result<Vec<Instance>, StoreError>>) -> Value {
        let now = self.now();
        let (keys, official) = super::trusted_key_ids();
        let license = self.license().map(|l| {
            json!({
                "path": l.path.display().to_string(),
                "license_id": l.license_id,
                "customer": l.customer,
                "issued_at": rfc3339(l.issued_at),
                "not_before": rfc3339(l.not_before),
                "expires_at": rfc3339(l.expires_at),
                "grace_days": l.grace_days,
                "grace_ends_at": rfc3339(l.grace_end()),
                "expires_in_seconds": l.expires_in(now),
                "features": l.features,
                "max_instances": l.max_instances,
                "deployment_id": l.deployment_id,
                "hostnames": l.hostnames,
                "notes": l.notes,
                "key_id": l.key_id,
            })
        });
        let instances = match live {
            None => json!({
                "counted": false,
                "max": self.max_instances(),
                "reason": "instances are counted on a PostgreSQL usage store; an SQLite store serves one process",
            }),
            Some(Ok(live)) => json!({
                "counted": true,
                "max": self.max_instances(),
                "heartbeat_interval_ms": self.registry.as_ref().map(|(_, d)| d.as_millis() as u64),
                "live": live.iter().map(|i| json!({
                    "instance_id": i.instance_id,
                    "hostname": i.hostname,
                    "started_at": crate::time::rfc3339_ms(i.started_at_ms),
                    "last_seen_at": crate::time::rfc3339_ms(i.last_seen_ms),
                    "this_instance": i.instance_id == self.me.instance_id,
                })).collect::<Vec<_>>(),
            }),
            Some(Err(e)) => json!({
                "counted": true,
                "max": self.max_instances(),
                "error": format!("the usage store did not answer: {}", store_reason(&e)),
            }),
        };
        json!({
            "status": self.status().as_str(),
            "license": license,
            "features": super::FEATURES.iter().map(|(name, f)| json!({
                "feature": name,
                "allowed": self.allows(*f),
            })).collect::<Vec<_>>(),
            "instance_id": self.me.instance_id,
            "instances": instances,
            "trusted_keys": keys,
            "development_keys": !official,
        })
    }

    /// Refreshes this process's heartbeat every interval and gives the daily license warning
    /// every [`super::CHECK_EVERY`], until `stop` turns true; then deregisters.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self
            .registry
            .as_ref()
            .map_or(super::CHECK_EVERY, |(_, d)| *d);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => break,
            }
            if last_check.is_none_or(|t| t.elapsed() >= super::CHECK_EVERY) {
                last_check = Some(tokio::time::Instant::now());
                if let Some(w) = self.warning() {
                    if w.expired {
                        tracing::error!("{}", w.message);
                    } else {
                        tracing::warn!("{}", w.message);
                    }
                }
            }
            if let Some((store, _)) = &self.registry {
                if let Err(e) = store.heartbeat(&self.me, crate::time::now_ms()).await {
                    tracing::warn!(error = %store_reason(&e), "instance heartbeat failed; retrying");
                }
            }
        }
        if let Some((store, _)) = &self.registry {
            if let Err(e) = store.deregister(&self.me.instance_id).await {
                tracing::warn!(error = %store_reason(&e), "could not deregister this instance; its slot frees when the heartbeat goes stale");
            }
        }
    }
}

/// A store error for messages: the driver's text, never a connection string.
fn store_reason(e: &StoreError) -> String {
    crate::bounds::clip(&e.to_string(), 300).into_owned()
}
