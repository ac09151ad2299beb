//! The per-replica ledger: what this process holds of each counter, so that the hot path rarely
//! waits on the shared backend.
//!
//! - **Windows** (requests and tokens per calendar minute): a replica takes units of a window's
//!   counter from the backend in *leases* (with Redis: `lease_fraction` of the limit at once;
//!   in memory: exactly what a request needs) and spends them locally. The backend grants a
//!   lease only within the limit, atomically, so replicas together never admit more than the
//!   limit; what a replica holds unspent when the window ends is simply not used.
//! - **Backend down**: a window falls back to a local counter of limit / `expected_replicas`
//!   per replica (`on_backend_error = "allow"`), or refuses (`"deny"`); the backend is tried
//!   again after a second, and shared counting resumes on its own.
//! - **Concurrency**: counted per replica (each enforces its share, limit / replicas, when the
//!   backend is shared).
//! - **Budgets**: spend per period, charged in micro-USD; in memory it is the process's counter,
//!   with Redis the shared one (charges are sent in the background, through a bounded queue).
//!   A counter missing from the backend (a restart, Redis without persistence) is rebuilt from
//!   the usage store's records of the period before it is first used.

use super::backend::{Backend, BackendError};
use crate::config::limits::OnBackendError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a window counter lives in the backend (a minute, plus slack).
const WINDOW_TTL: Duration = Duration::from_secs(120);
/// How long a failed backend is left alone before it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often a budget's shared spend is read again.
const BUDGET_REFRESH: Duration = Duration::from_secs(2);
/// Budget charges waiting to be written to the backend.
const CHARGE_QUEUE: usize = 4096;

/// One per-minute counter (a quota's requests or tokens for one subject), built once per
/// configuration: the hot path locks its own small mutex, never a shared map.
#[derive(Debug)]
pub(crate) struct WindowCounter {
    /// The backend key, without the window.
    key: String,
    stock: Mutex<Stock>,
    /// While the backend is down: (window, units used here).
    fallback: Mutex<(i64, u64)>,
}

impl WindowCounter {
    /// A counter stored under `key` (plus `:WINDOW`) in a shared backend.
    pub(crate) fn new(key: String) -> Self {
        WindowCounter {
            key,
            stock: Mutex::new(Stock::default()),
            fallback: Mutex::new((0, 0)),
        }
    }
}

/// One budget's spend for one subject, built once per configuration.
#[derive(Debug)]
pub(crate) struct SpendCounter {
    /// The backend key, without the period start.
    key: String,
    /// The period it holds, and the spend in it.
    spend: Mutex<(i64, Spend)>,
}

impl SpendCounter {
    /// A counter stored under `key` (plus `:PERIOD_START`).
    pub(crate) fn new(key: String) -> Self {
        SpendCounter {
            key,
            spend: Mutex::new((i64::MIN, Spend::default())),
        }
    }

    /// The backend key of the period starting at `start`.
    pub(crate) fn period_key(&self, start: i64) -> String {
        format!("{}:{start}", self.key)
    }
}

/// What this replica holds of one window counter.
#[derive(Debug, Default, Clone, Copy)]
struct Stock {
    window: i64,
    /// Units leased from the backend in this window.
    granted: i64,
    /// Units spent locally.
    used: i64,
    /// The counter's total at the last lease (all replicas).
    shared_total: u64,
}

impl Stock {
    fn available(&self) -> i64 {
        self.granted - self.used
    }
}

/// The answer to a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The units were taken.
    pub(crate) allowed: bool,
    /// About how many are left in the window (for headers).
    pub(crate) remaining: u64,
}

/// A budget's spend as this replica knows it.
#[derive(Debug, Default, Clone, Copy)]
struct Spend {
    loaded: bool,
    /// Micro-USD known to be in the shared counter.
    shared: i64,
    /// Micro-USD charged here and not yet confirmed by the backend.
    pending: i64,
    refreshed: Option<Instant>,
}

/// Settings of the ledger.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LedgerSettings {
    /// What requests get while the backend is down.
    pub(crate) on_error: OnBackendError,
    /// Replicas sharing the backend.
    pub(crate) replicas: u32,
    /// Share of a limit leased at once (shared backends).
    pub(crate) lease_fraction: f64,
}

/// Local state over a backend.
#[derive(Debug)]
pub(crate) struct Ledger {
    backend: Arc<dyn Backend>,
    settings: LedgerSettings,
    up: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
    charges: Option<mpsc::Sender<Charge>>,
    /// Set by the metrics: 1 while the backend answers.
    pub(crate) backend_up: prometheus_client::metrics::gauge::Gauge,
}

/// The backend could not be asked and the operator chose `deny`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unavailable;

impl Ledger {
    /// A ledger over `backend`; with a shared backend, a background task writes budget charges
    /// (it ends when the ledger is dropped).
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        settings: LedgerSettings,
        backend_up: prometheus_client::metrics::gauge::Gauge,
    ) -> Arc<Self> {
        backend_up.set(1);
        let shared = backend.shared();
        let (tx, rx) = if shared {
            let (tx, rx) = mpsc::channel(CHARGE_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let ledger = Arc::new(Ledger {
            backend,
            settings,
            up: AtomicBool::new(true),
            retry_at: Mutex::new(None),
            last_warning: Mutex::new(None),
            charges: tx,
            backend_up,
        });
        if let Some(rx) = rx {
            tokio::spawn(write_charges(Arc::downgrade(&ledger), rx));
        }
        ledger
    }

    /// Whether the backend answered last time.
    pub(crate) fn backend_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether the backend is shared with other replicas.
    pub(crate) fn shared(&self) -> bool {
        self.backend.shared()
    }

    /// Whether to skip the backend for now (it failed less than a second ago).
    fn resting(&self) -> bool {
        let retry = self.retry_at.lock().expect("retry lock");
        retry.is_some_and(|at| Instant::now() < at)
    }

    fn failed(&self, e: &BackendError) {
        if self.up.swap(false, Ordering::Relaxed) {
            self.backend_up.set(0);
        }
        *self.retry_at.lock().expect("retry lock") = Some(Instant::now() + RETRY_AFTER_FAILURE);
        let mut last = self.last_warning.lock().expect("warning lock");
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, on_backend_error = ?self.settings.on_error, "limits backend unreachable; limiting per replica");
        }
    }

    fn answered(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            self.backend_up.set(1);
            *self.retry_at.lock().expect("retry lock") = None;
            tracing::info!("limits backend answers again; shared counting resumed");
        }
    }

    /// Takes `n` units of window `window` of `c`, limit `limit`. In memory the counter is the
    /// truth (no lease); shared, a lease is taken when this replica's stock runs out.
    pub(crate) async fn take(
        &self,
        c: &WindowCounter,
        window: i64,
        n: u64,
        limit: u64,
    ) -> Result<Taken, Unavailable> {
        let n_i = i64::try_from(n).unwrap_or(i64::MAX);
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let shared = self.backend.shared();
        let need = {
            let mut s = c.stock.lock().expect("stock lock");
            if s.window != window {
                *s = Stock {
                    window,
                    ..Stock::default()
                };
            }
            if !shared {
                let allowed = s.used + n_i <= limit_i;
                if allowed {
                    s.used += n_i;
                }
                let left = u64::try_from((limit_i - s.used).max(0)).unwrap_or(0);
                return Ok(Taken {
                    allowed,
                    remaining: left,
                });
            }
            if s.available() >= n_i {
                s.used += n_i;
                return Ok(self.taken(true, &s, limit_i));
            }
            n_i - s.available().max(0)
        };
        if self.resting() {
            return self.fallback_take(c, window, n, limit);
        }
        let lease = (limit as f64 * self.settings.lease_fraction).ceil() as i64;
        let want = need.max(lease).max(1);
        let full_key = format!("{}:{window}", c.key);
        match self
            .backend
            .lease(&full_key, want as u64, limit, WINDOW_TTL)
            .await
        {
            Ok((granted, total)) => {
                self.answered();
                let mut s = c.stock.lock().expect("stock lock");
                if s.window != window {
                    *s = Stock {
                        window,
                        ..Stock::default()
                    };
                }
                s.granted += i64::try_from(granted).unwrap_or(0);
                s.shared_total = total;
                let allowed = s.available() >= n_i;
                if allowed {
                    s.used += n_i;
                }
                Ok(self.taken(allowed, &s, limit_i))
            }
            Err(e) => {
                self.failed(&e);
                self.fallback_take(c, window, n, limit)
            }
        }
    }

    fn taken(&self, allowed: bool, s: &Stock, limit: i64) -> Taken {
        // Left: what nobody has leased yet, plus what this replica holds unspent.
        let shared = i64::try_from(s.shared_total).unwrap_or(i64::MAX);
        let remaining = (limit - shared + s.available().max(0)).clamp(0, limit);
        Taken {
            allowed,
            remaining: u64::try_from(remaining).unwrap_or(0),
        }
    }

    /// While the backend is down: a local counter of this replica's share of the limit.
    fn fallback_take(
        &self,
        c: &WindowCounter,
        window: i64,
        n: u64,
        limit: u64,
    ) -> Result<Taken, Unavailable> {
        if self.settings.on_error == OnBackendError::Deny {
            return Err(Unavailable);
        }
        let share = limit.div_ceil(u64::from(self.settings.replicas)).max(1);
        let mut slot = c.fallback.lock().expect("fallback lock");
        if slot.0 != window {
            *slot = (window, 0);
        }
        let allowed = slot.1 + n <= share;
        if allowed {
            slot.1 += n;
        }
        Ok(Taken {
            allowed,
            remaining: share.saturating_sub(slot.1),
        })
    }

    /// Settles units taken in a window with what was used: in memory the counter is corrected;
    /// shared, more is charged to the shared counter and less is given back to this replica's
    /// stock.
    pub(crate) fn settle(&self, c: &WindowCounter, window: i64, taken: u64, used: u64) {
        let delta = i64::try_from(used).unwrap_or(i64::MAX) - i64::try_from(taken).unwrap_or(0);
        if delta == 0 {
            return;
        }
        {
            let mut s = c.stock.lock().expect("stock lock");
            if s.window != window {
                return;
            }
            s.used = (s.used + delta).max(0);
        }
        if self.backend.shared() && delta > 0 {
            self.queue(Charge {
                key: format!("{}:{window}", c.key),
                delta,
                ttl: WINDOW_TTL,
                spend: None,
            });
        }
    }

    /// Units of window `window` of `c` known to be used: this process's count in memory, the
    /// shared total at the last lease with a shared backend.
    pub(crate) fn in_window(&self, c: &WindowCounter, window: i64) -> u64 {
        let s = c.stock.lock().expect("stock lock");
        match s.window == window {
            true if self.backend.shared() => s.shared_total,
            true => u64::try_from(s.used).unwrap_or(0),
            false => 0,
        }
    }

    /// This replica's share of a concurrency limit.
    pub(crate) fn slots(&self, limit: u64) -> u64 {
        if self.backend.shared() {
            limit.div_ceil(u64::from(self.settings.replicas)).max(1)
        } else {
            limit
        }
    }

    /// A budget's spend in micro-USD in the period starting at `start`; `rebuild` gives the
    /// spend from the usage store when the backend has no counter for it yet (or cannot be
    /// asked before it was ever read).
    pub(crate) async fn spent<F>(
        &self,
        c: &SpendCounter,
        start: i64,
        ttl: Duration,
        rebuild: F,
    ) -> i64
    where
        F: std::future::Future<Output = Option<i64>>,
    {
        let (loaded, stale, known) = {
            let mut guard = c.spend.lock().expect("spend lock");
            if guard.0 != start {
                *guard = (start, Spend::default());
            }
            let s = guard.1;
            let stale = s.refreshed.is_none_or(|at| at.elapsed() >= BUDGET_REFRESH);
            (s.loaded, stale, s.shared + s.pending)
        };
        if loaded && (!stale || !self.backend.shared() || self.resting()) {
            return known;
        }
        let key = c.period_key(start);
        let mut rebuild = Some(rebuild);
        let asked = if self.resting() {
            Err(None)
        } else {
            match self.backend.get(&key).await {
                Ok(Some(v)) => Ok(v),
                Ok(None) if loaded => Ok(0),
                Ok(None) => {
                    let from_store = rebuild.take().expect("not taken yet").await.unwrap_or(0);
                    self.backend
                        .set_absent(&key, from_store, ttl)
                        .await
                        .map_err(Some)
                }
                Err(e) => Err(Some(e)),
            }
        };
        let known = match asked {
            Ok(v) => {
                self.answered();
                Some(v)
            }
            Err(e) => {
                if let Some(e) = e {
                    self.failed(&e);
                }
                // Never read and the backend cannot be asked: the usage store is the truth.
                match (loaded, rebuild.take()) {
                    (false, Some(r)) => r.await,
                    _ => None,
                }
            }
        };
        let mut guard = c.spend.lock().expect("spend lock");
        if guard.0 != start {
            *guard = (start, Spend::default());
        }
        let s = &mut guard.1;
        if let Some(v) = known {
            s.loaded = true;
            s.shared = v;
        }
        s.refreshed = Some(Instant::now());
        s.shared + s.pending
    }

    /// Charges `micros` to the period starting at `start` of a budget counter.
    pub(crate) fn charge(
        self: &Arc<Self>,
        c: &Arc<SpendCounter>,
        start: i64,
        micros: i64,
        ttl: Duration,
    ) {
        if micros <= 0 {
            return;
        }
        {
            let mut guard = c.spend.lock().expect("spend lock");
            if guard.0 != start {
                return;
            }
            if self.backend.shared() {
                guard.1.pending += micros;
            } else {
                guard.1.shared += micros;
            }
        }
        let key = c.period_key(start);
        if self.backend.shared() {
            self.queue(Charge {
                key,
                delta: micros,
                ttl,
                spend: Some((c.clone(), start)),
            });
        } else {
            // The memory backend answers at once: its future has no await point.
            futures_util::FutureExt::now_or_never(self.backend.add(&key, micros, ttl));
        }
    }

    fn queue(&self, charge: Charge) {
        if let Some(tx) = &self.charges {
            if tx.try_send(charge).is_err() {
                tracing::warn!("limits charge queue full; a charge was dropped");
            }
        }
    }
}

/// A delta for a shared counter, written in the background; a budget charge also updates its
/// spend counter once written.
#[derive(Debug)]
struct Charge {
    key: String,
    delta: i64,
    ttl: Duration,
    spend: Option<(Arc<SpendCounter>, i64)>,
}

/// Writes queued charges to the shared backend; ends when the ledger is gone.
async fn write_charges(ledger: Weak<Ledger>, mut rx: mpsc::Receiver<Charge>) {
    while let Some(c) = rx.recv().await {
        let Some(l) = ledger.upgrade() else { return };
        match l.backend.add(&c.key, c.delta, c.ttl).await {
            Ok(total) => {
                l.answered();
                if let Some((counter, start)) = &c.spend {
                    let mut guard = counter.spend.lock().expect("spend lock");
                    if guard.0 == *start {
                        guard.1.pending = (guard.1.pending - c.delta).max(0);
                        guard.1.shared = guard.1.shared.max(total);
                    }
                }
            }
            Err(e) => l.failed(&e),
        }
    }
}
