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
use std::collections::HashMap;
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
    stocks: Mutex<HashMap<String, Stock>>,
    fallback: Mutex<HashMap<String, (i64, u64)>>,
    concurrency: Mutex<HashMap<String, u64>>,
    spends: Mutex<HashMap<String, Spend>>,
    up: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
    charges: Option<mpsc::Sender<(String, i64, Duration)>>,
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
            stocks: Mutex::new(HashMap::new()),
            fallback: Mutex::new(HashMap::new()),
            concurrency: Mutex::new(HashMap::new()),
            spends: Mutex::new(HashMap::new()),
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

    /// Takes `n` units of the window `window` of counter `key`, limit `limit`.
    pub(crate) async fn take(
        &self,
        key: &str,
        window: i64,
        n: u64,
        limit: u64,
    ) -> Result<Taken, Unavailable> {
        let n_i = i64::try_from(n).unwrap_or(i64::MAX);
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let need = {
            let mut stocks = self.stocks.lock().expect("stocks lock");
            let s = current(&mut stocks, key, window);
            if s.available() >= n_i {
                s.used += n_i;
                return Ok(self.taken(true, s, limit_i));
            }
            n_i - s.available().max(0)
        };
        if self.resting() {
            return self.fallback_take(key, window, n, limit);
        }
        let want = if self.backend.shared() {
            let lease = (limit as f64 * self.settings.lease_fraction).ceil() as i64;
            need.max(lease).max(1)
        } else {
            need
        };
        let full_key = format!("{key}:{window}");
        match self
            .backend
            .lease(&full_key, want as u64, limit, WINDOW_TTL)
            .await
        {
            Ok((granted, total)) => {
                self.answered();
                let mut stocks = self.stocks.lock().expect("stocks lock");
                let s = current(&mut stocks, key, window);
                s.granted += i64::try_from(granted).unwrap_or(0);
                s.shared_total = total;
                let allowed = s.available() >= n_i;
                if allowed {
                    s.used += n_i;
                }
                Ok(self.taken(allowed, s, limit_i))
            }
            Err(e) => {
                self.failed(&e);
                self.fallback_take(key, window, n, limit)
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
        key: &str,
        window: i64,
        n: u64,
        limit: u64,
    ) -> Result<Taken, Unavailable> {
        if self.settings.on_error == OnBackendError::Deny {
            return Err(Unavailable);
        }
        let share = limit.div_ceil(u64::from(self.settings.replicas)).max(1);
        let mut map = self.fallback.lock().expect("fallback lock");
        let slot = map.entry(key.to_string()).or_insert((window, 0));
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

    /// Settles tokens reserved in a window with what was used: more is charged to the shared
    /// counter, less is given back to this replica's stock.
    pub(crate) fn settle(&self, key: &str, window: i64, reserved: u64, used: u64) {
        let delta = i64::try_from(used).unwrap_or(i64::MAX) - i64::try_from(reserved).unwrap_or(0);
        if delta == 0 {
            return;
        }
        {
            let mut stocks = self.stocks.lock().expect("stocks lock");
            match stocks.get_mut(key) {
                Some(s) if s.window == window => s.used += delta,
                _ => return,
            }
        }
        let full_key = format!("{key}:{window}");
        if !self.backend.shared() {
            // In memory the counter is the truth: keep it exact (its future is ready at once).
            if let Some(s) = self.stocks.lock().expect("stocks lock").get_mut(key) {
                s.granted += delta;
            }
            futures_util::FutureExt::now_or_never(self.backend.add(&full_key, delta, WINDOW_TTL));
        } else if delta > 0 {
            // Shared: what was used beyond the reservation is charged to everyone's counter;
            // what was reserved and not used stays in this replica's stock.
            self.queue_add(full_key, delta, WINDOW_TTL);
        }
    }

    /// Units of window `window` of `key` known to be used: this replica's count in memory, the
    /// shared total at the last lease with a shared backend.
    pub(crate) fn in_window(&self, key: &str, window: i64) -> u64 {
        let stocks = self.stocks.lock().expect("stocks lock");
        match stocks.get(key) {
            Some(s) if s.window == window && self.backend.shared() => s.shared_total,
            Some(s) if s.window == window => u64::try_from(s.used).unwrap_or(0),
            _ => 0,
        }
    }

    /// Takes a concurrency slot of `key` (this replica's share of `limit`).
    pub(crate) fn acquire(&self, key: &str, limit: u64) -> (bool, u64) {
        let share = if self.backend.shared() {
            limit.div_ceil(u64::from(self.settings.replicas)).max(1)
        } else {
            limit
        };
        let mut map = self.concurrency.lock().expect("concurrency lock");
        let n = map.entry(key.to_string()).or_insert(0);
        if *n >= share {
            return (false, 0);
        }
        *n += 1;
        (true, share - *n)
    }

    /// Gives a concurrency slot back.
    pub(crate) fn release(&self, key: &str) {
        let mut map = self.concurrency.lock().expect("concurrency lock");
        if let Some(n) = map.get_mut(key) {
            *n = n.saturating_sub(1);
        }
    }

    /// Requests in flight for `key` on this replica.
    pub(crate) fn in_flight(&self, key: &str) -> u64 {
        self.concurrency
            .lock()
            .expect("concurrency lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// A budget's spend in micro-USD; `rebuild` gives the spend from the usage store when the
    /// backend has no counter for it yet (or cannot be asked before it was ever read).
    pub(crate) async fn spent<F>(&self, key: &str, ttl: Duration, rebuild: F) -> i64
    where
        F: std::future::Future<Output = Option<i64>>,
    {
        let (loaded, stale, known) = {
            let spends = self.spends.lock().expect("spends lock");
            let s = spends.get(key).copied().unwrap_or_default();
            let stale = s.refreshed.is_none_or(|at| at.elapsed() >= BUDGET_REFRESH);
            (s.loaded, stale, s.shared + s.pending)
        };
        if loaded && (!stale || !self.backend.shared() || self.resting()) {
            return known;
        }
        let mut rebuild = Some(rebuild);
        let asked = if self.resting() {
            Err(None)
        } else {
            match self.backend.get(key).await {
                Ok(Some(v)) => Ok(v),
                Ok(None) if loaded => Ok(0),
                Ok(None) => {
                    let from_store = rebuild.take().expect("not taken yet").await.unwrap_or(0);
                    self.backend
                        .set_absent(key, from_store, ttl)
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
        let mut spends = self.spends.lock().expect("spends lock");
        let s = spends.entry(key.to_string()).or_default();
        if let Some(v) = known {
            s.loaded = true;
            s.shared = v;
        }
        s.refreshed = Some(Instant::now());
        s.shared + s.pending
    }

    /// Charges `micros` to a budget.
    pub(crate) fn charge(&self, key: &str, micros: i64, ttl: Duration) {
        if micros <= 0 {
            return;
        }
        {
            let mut spends = self.spends.lock().expect("spends lock");
            let s = spends.entry(key.to_string()).or_default();
            if self.backend.shared() {
                s.pending += micros;
            } else {
                s.shared += micros;
            }
        }
        if self.backend.shared() {
            self.queue_add(key.to_string(), micros, ttl);
        } else {
            futures_util::FutureExt::now_or_never(self.backend.add(key, micros, ttl));
        }
    }

    fn queue_add(&self, key: String, delta: i64, ttl: Duration) {
        if let Some(tx) = &self.charges {
            if tx.try_send((key, delta, ttl)).is_err() {
                tracing::warn!("limits charge queue full; a charge was dropped");
            }
        }
    }
}

fn current<'a>(stocks: &'a mut HashMap<String, Stock>, key: &str, window: i64) -> &'a mut Stock {
    if !stocks.contains_key(key) {
        stocks.insert(key.to_string(), Stock::default());
    }
    let s = stocks.get_mut(key).expect("inserted above");
    if s.window != window {
        *s = Stock {
            window,
            ..Stock::default()
        };
    }
    s
}

/// Writes queued charges to the shared backend; ends when the ledger is gone.
async fn write_charges(ledger: Weak<Ledger>, mut rx: mpsc::Receiver<(String, i64, Duration)>) {
    while let Some((key, delta, ttl)) = rx.recv().await {
        let Some(l) = ledger.upgrade() else { return };
        match l.backend.add(&key, delta, ttl).await {
            Ok(total) => {
                l.answered();
                let mut spends = l.spends.lock().expect("spends lock");
                if let Some(s) = spends.get_mut(&key) {
                    s.pending = (s.pending - delta).max(0);
                    s.shared = s.shared.max(total);
                }
            }
            Err(e) => l.failed(&e),
        }
    }
}
