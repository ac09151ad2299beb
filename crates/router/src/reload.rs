//! Config reload. [`Live`] holds the [`Runtime`] in force and replaces it atomically: a reload
//! reads and validates the whole file and checks the license first (off the async threads);
//! on any error nothing changes, the error is kept for `GET /admin/config` and counted. On
//! success the new runtime is built from the old one ([`Runtime::reloaded`]) and swapped in:
//! requests in flight finish on the runtime they started with; new ones get the new one.
//!
//! Triggers: `SIGHUP` (the binary), `POST /admin/config/reload`, and with
//! `server.watch_config` a poll of the file (debounced: a change must hold still for
//! [`DEBOUNCE`] before it is loaded).

use crate::config::{Config, TargetIds};
use crate::license::{License, LoadError};
use crate::state::Runtime;
use crate::time::now_ms;
use arc_swap::ArcSwap;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a changed file must stay unchanged before the watcher loads it.
pub const DEBOUNCE: Duration = Duration::from_millis(500);
/// How often the watcher looks at the file.
pub const POLL: Duration = Duration::from_secs(1);

/// Why a reload did not take effect (the config in force stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The router was not started from a file.
    #[error("this router was not started from a config file; there is nothing to reload")]
    NoSource,
    /// The file could not be read.
    #[error("{0}")]
    Read(String),
    /// The file is not a valid config.
    #[error("{0}")]
    Invalid(crate::config::ConfigErrors),
    /// The license does not verify or does not admit the config.
    #[error("{0}")]
    License(LoadError),
}

impl ReloadError {
    /// Each problem on its own line (key paths first).
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// What a successful reload did.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The new config's hash.
    pub hash: String,
    /// The hash it replaced.
    pub previous_hash: String,
    /// Settings that changed but only take effect at the next start.
    pub restart_needed: Vec<String>,
}

/// The loaded config's provenance and how reloads went (`GET /admin/config`).
#[derive(Debug, Clone, Default)]
struct Status {
    loaded_at_ms: i64,
    reloads: u64,
    failures: u64,
    last_error: Option<(i64, Vec<String>)>,
    restart_needed: Vec<String>,
}

/// The router across config reloads.
pub struct Live {
    current: ArcSwap<Runtime>,
    source: Option<PathBuf>,
    targets: Mutex<TargetIds>,
    /// One reload at a time (never held by a request).
    reloading: tokio::sync::Mutex<()>,
    status: Mutex<Status>,
    /// Console sign-ins (they outlive config reloads).
    pub console: crate::auth::Sessions,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config_hash", &self.current().config.hash)
            .field("source", &self.source)
            .finish()
    }
}

impl Live {
    /// The router serving `runtime`, reloadable from `source` when given.
    pub fn new(runtime: Runtime, source: Option<PathBuf>) -> Arc<Live> {
        Self::from_arc(Arc::new(runtime), source)
    }

    /// Like [`Live::new`] for a runtime already shared.
    pub fn from_arc(runtime: Arc<Runtime>, source: Option<PathBuf>) -> Arc<Live> {
        let targets = TargetIds::of(&runtime.config);
        Arc::new(Live {
            current: ArcSwap::new(runtime),
            source,
            targets: Mutex::new(targets),
            reloading: tokio::sync::Mutex::new(()),
            status: Mutex::new(Status {
                loaded_at_ms: now_ms(),
                ..Status::default()
            }),
            console: crate::auth::Sessions::default(),
        })
    }

    /// The runtime in force now (a request holds on to it until it ends).
    pub fn current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// The file the config is (re)loaded from.
    pub fn source(&self) -> Option<&PathBuf> {
        self.source.as_ref()
    }

    /// Reads, validates and license-checks the config file, then swaps it in. On error the
    /// config in force stays and the error is logged, kept and counted.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.current();
        let result = match &self.source {
            None => Err(ReloadError::NoSource),
            Some(path) => {
                let path = path.clone();
                let license_now = current.license.now();
                tokio::task::spawn_blocking(move || prepare(&path, license_now))
                    .await
                    .unwrap_or_else(|e| Err(ReloadError::Read(format!("reload task failed: {e}"))))
            }
        };
        let metrics = &current.recorder.metrics;
        match result {
            Err(e) => {
                metrics.config_reload_failures.inc();
                let lines = e.lines();
                for l in &lines {
                    tracing::error!(error = %l, "config reload refused; the config in force stays");
                }
                let mut s = self.status.lock().expect("reload status lock");
                s.failures += 1;
                s.last_error = Some((now_ms(), lines));
                Err(e)
            }
            Ok((mut config, license)) => {
                self.targets
                    .lock()
                    .expect("target ids lock")
                    .assign(&mut config);
                let restart_needed = restart_needed(&current.config, &config);
                for w in &config.warnings {
                    tracing::warn!("{w}");
                }
                let next = current.reloaded(config);
                current.license.replace(license);
                let reloaded = Reloaded {
                    hash: next.config.hash.clone(),
                    previous_hash: current.config.hash.clone(),
                    restart_needed: restart_needed.clone(),
                };
                self.current.store(Arc::new(next));
                metrics.config_reloads.inc();
                for r in &restart_needed {
                    tracing::warn!("{r}");
                }
                tracing::info!(
                    config_hash = %reloaded.hash,
                    previous_hash = %reloaded.previous_hash,
                    "config reloaded"
                );
                let mut s = self.status.lock().expect("reload status lock");
                s.reloads += 1;
                s.loaded_at_ms = now_ms();
                s.restart_needed = restart_needed;
                Ok(reloaded)
            }
        }
    }

    /// What `GET /admin/config` answers.
    pub fn report(&self) -> Value {
        let current = self.current();
        let s = self.status.lock().expect("reload status lock").clone();
        json!({
            "config_hash": current.config.hash,
            "source": self.source.as_ref().map(|p| p.display().to_string()),
            "loaded_at": crate::time::rfc3339_ms(s.loaded_at_ms),
            "reloads": s.reloads,
            "reload_failures": s.failures,
            "last_reload_error": s.last_error.map(|(at, errors)| json!({
                "at": crate::time::rfc3339_ms(at),
                "errors": errors,
            })),
            "restart_needed": s.restart_needed,
            "watch_config": current.config.server.watch_config,
        })
    }

    /// With `server.watch_config`, reloads when the file changes (polled every [`POLL`],
    /// loaded once it has held still for [`DEBOUNCE`]); returns when `stop` turns true.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(path) = self.source.clone() else {
            return;
        };
        let mut last_seen = fingerprint(&path).await;
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            if !self.current().config.server.watch_config {
                continue;
            }
            let seen = fingerprint(&path).await;
            if seen == last_seen {
                continue;
            }
            // Changed: wait until it holds still (an editor writing in several steps).
            tokio::time::sleep(DEBOUNCE).await;
            let settled = fingerprint(&path).await;
            if settled != seen {
                continue;
            }
            last_seen = settled;
            let _ = self.reload().await;
        }
    }
}

/// What tells a changed file: its modification time and length.
async fn fingerprint(path: &PathBuf) -> Option<(std::time::SystemTime, u64)> {
    let m = tokio::fs::metadata(path).await.ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reads, validates and license-checks a config file (blocking: file reads).
fn prepare(
    path: &PathBuf,
    license_now: std::time::SystemTime,
) -> Result<(Config, Option<License>), ReloadError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ReloadError::Read(format!("{}: cannot read config file: {e}", path.display()))
    })?;
    let config = crate::config::parse(&text).map_err(ReloadError::Invalid)?;
    let license = crate::license::load(&config, license_now).map_err(ReloadError::License)?;
    Ok((config, license))
}

/// Settings that changed between `old` and `new` but only take effect at the next start.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |key: &str, changed: bool| {
        if changed {
            out.push(format!(
                "{key} changed: it takes effect when the router restarts"
            ));
        }
    };
    let (a, b) = (&old.server, &new.server);
    check("server.listen", a.listen != b.listen);
    check(
        "server.listen_backlog",
        a.listen_backlog != b.listen_backlog,
    );
    check(
        "server.max_connections",
        a.max_connections != b.max_connections,
    );
    check(
        "server.header_read_timeout_ms",
        a.header_read_timeout != b.header_read_timeout,
    );
    check("server.idle_timeout_ms", a.idle_timeout != b.idle_timeout);
    check("telemetry", old.telemetry != new.telemetry);
    let (a, b) = (&old.store, &new.store);
    check("store.url", a.url != b.url);
    check("store.retention_days", a.retention_days != b.retention_days);
    check(
        "store (writer settings)",
        format!("{:?}", a.writer) != format!("{:?}", b.writer),
    );
    check(
        "license.heartbeat_interval_ms",
        old.license.heartbeat_interval != new.license.heartbeat_interval,
    );
    out
}

/// The runtime in force when a request arrived, as a handler argument: the request keeps it
/// to its end, whatever reloads happen meanwhile.
#[derive(Debug, Clone)]
pub struct Current(pub Arc<Runtime>);

impl axum::extract::FromRequestParts<Arc<Live>> for Current {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut http::request::Parts,
        live: &Arc<Live>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Current(live.current()))
    }
}

/// What a server can be started with: a [`Live`] router, or one runtime (not reloadable).
pub trait IntoLive {
    /// The live router.
    fn into_live(self) -> Arc<Live>;
}

impl IntoLive for Arc<Live> {
    fn into_live(self) -> Arc<Live> {
        self
    }
}

impl IntoLive for Arc<Runtime> {
    fn into_live(self) -> Arc<Live> {
        Live::from_arc(self, None)
    }
}
