//! The usage writer: off the request path, records arrive through a bounded queue and are
//! written in batches (every `batch_size` records or `flush_interval`). The writer task is not
//! woken per record: it sleeps until a batch is full (the submitter says so) or the interval
//! ends, then takes what is queued. When the store fails,
//! batches go to an append-only spool file (fsync per batch) and are replayed, in order, once
//! the store answers again; records are keyed by `record_id`, so a replay stores each once.
//! Shutdown drains the queue and the spool. `kill -9` loses at most the batch being collected
//! (up to one flush interval of records).

use super::record::UsageRecord;
use super::store::UsageStore;
use crate::config::WriterConfig;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

/// Counters shared with metrics and readiness.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records written to the store.
    pub written: AtomicU64,
    /// Records dropped (queue full, or spool full).
    pub dropped: AtomicU64,
    /// Bytes in the spool.
    pub spool_bytes: AtomicU64,
    /// Whether the last store operation succeeded.
    pub store_up: AtomicBool,
    /// Whether the spool is over its limit.
    pub spool_full: AtomicBool,
    /// Spool lines that could not be read back as records (kept in `SPOOL.rejected`).
    pub spool_rejected: AtomicU64,
}

/// The writer's handle: the queue's sending side, stats, and shutdown.
#[derive(Debug)]
pub struct Writer {
    tx: mpsc::Sender<UsageRecord>,
    /// Shared counters.
    pub stats: Arc<WriterStats>,
    shutdown: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    capacity: usize,
    batch_size: usize,
    /// Wakes the writer task when a full batch is queued.
    full: Arc<Notify>,
}

impl Writer {
    /// Starts the writer task.
    pub fn spawn(store: Arc<dyn UsageStore>, config: WriterConfig) -> Writer {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let stats = Arc::new(WriterStats::default());
        stats.store_up.store(true, Ordering::Relaxed);
        let spool_len = std::fs::metadata(&config.spool_path).map_or(0, |m| m.len());
        stats.spool_bytes.store(spool_len, Ordering::Relaxed);
        let capacity = config.queue_capacity;
        let batch_size = config.batch_size;
        let full = Arc::new(Notify::new());
        let queue = Queue {
            rx,
            full: full.clone(),
        };
        let task = tokio::spawn(run(store, config, queue, shutdown_rx, stats.clone()));
        Writer {
            tx,
            stats,
            shutdown,
            task: tokio::sync::Mutex::new(Some(task)),
            capacity,
            batch_size,
            full,
        }
    }

    /// Queues a record; never waits. Returns false (and counts a drop) when the queue is full.
    pub fn submit(&self, r: UsageRecord) -> bool {
        if self.tx.try_send(r).is_ok() {
            if self.queue_depth() >= self.batch_size {
                self.full.notify_one();
            }
            return true;
        }
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Records waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Drains the queue and the spool into the store (or the spool) and stops the task.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// The receiving side of the queue and the writer's wake-up for a full batch.
struct Queue {
    rx: mpsc::Receiver<UsageRecord>,
    full: Arc<Notify>,
}

impl Queue {
    /// Moves queued records into `batch`, up to `limit` in all. False once every sender is
    /// gone and the queue is empty.
    fn take(&mut self, batch: &mut Vec<UsageRecord>, limit: usize) -> bool {
        while batch.len() < limit {
            match self.rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }
}

/// The writer task.
async fn run(
    store: Arc<dyn UsageStore>,
    config: WriterConfig,
    mut queue: Queue,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<WriterStats>,
) {
    let mut w = Sink {
        store,
        config,
        stats,
        migrated: false,
    };
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(w.config.batch_size);
    let mut retry = tokio::time::interval(w.config.retry_interval);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open;
    loop {
        let deadline = tokio::time::sleep(w.config.flush_interval);
        tokio::pin!(deadline);
        loop {
            open = queue.take(&mut batch, w.config.batch_size);
            if !open || batch.len() >= w.config.batch_size {
                break;
            }
            tokio::select! {
                _ = queue.full.notified() => {}
                _ = &mut deadline => break,
                _ = retry.tick() => {
                    if w.spool_len() > 0 { w.replay().await; }
                }
                _ = shutdown.changed() => break,
            }
        }
        let closing = *shutdown.borrow() || !open;
        if closing {
            queue.take(&mut batch, usize::MAX);
        }
        if !batch.is_empty() {
            w.write(std::mem::take(&mut batch)).await;
        }
        if closing {
            if w.spool_len() > 0 {
                w.replay().await;
            }
            tracing::info!(
                written = w.stats.written.load(Ordering::Relaxed),
                spool_bytes = w.spool_len(),
                "usage writer stopped"
            );
            return;
        }
    }
}

/// Where batches go: the store, or the spool while the store fails.
struct Sink {
    store: Arc<dyn UsageStore>,
    config: WriterConfig,
    stats: Arc<WriterStats>,
    migrated: bool,
}

impl Sink {
    fn spool_len(&self) -> u64 {
        self.stats.spool_bytes.load(Ordering::Relaxed)
    }

    async fn store_batch(&mut self, batch: &[UsageRecord]) -> bool {
        if !self.migrated {
            match self.store.migrate().await {
                Ok(()) => self.migrated = true,
                Err(e) => {
                    tracing::warn!(error = %e, "usage store migration failed; spooling");
                    self.stats.store_up.store(false, Ordering::Relaxed);
                    return false;
                }
            }
        }
        match self.store.insert(batch).await {
            Ok(()) => {
                self.stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.store_up.store(true, Ordering::Relaxed);
                true
            }
            Err(e) => {
                if self.stats.store_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, records = batch.len(), "usage store failed; spooling");
                }
                false
            }
        }
    }

    /// Writes a batch: to the store when nothing is spooled (keeping order), else to the spool.
    async fn write(&mut self, batch: Vec<UsageRecord>) {
        if self.spool_len() == 0 && self.store_batch(&batch).await {
            return;
        }
        self.spool(batch).await;
        if self.stats.store_up.load(Ordering::Relaxed) {
            self.replay().await;
        }
    }

    /// Appends a batch to the spool and fsyncs it.
    async fn spool(&mut self, batch: Vec<UsageRecord>) {
        let path = self.config.spool_path.clone();
        let max = self.config.spool_max_bytes;
        let current = self.spool_len();
        let n = batch.len() as u64;
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut buf = Vec::new();
            for r in &batch {
                serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
                buf.push(b'\n');
            }
            if current + buf.len() as u64 > max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "spool over its limit",
                ));
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(&buf)?;
            f.sync_data()?;
            Ok(buf.len() as u64)
        })
        .await;
        match result {
            Ok(Ok(bytes)) => {
                self.stats.spool_bytes.fetch_add(bytes, Ordering::Relaxed);
                self.stats.spool_full.store(false, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                self.stats.spool_full.store(
                    e.kind() == std::io::ErrorKind::StorageFull,
                    Ordering::Relaxed,
                );
                tracing::error!(error = %e, records = n, "usage records dropped: the spool cannot take them");
            }
            Err(_) => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Appends unreadable spool lines to `SPOOL.rejected` (so nothing is silently lost) and
    /// counts them; false if they could not be kept (the spool is then left as it is).
    async fn set_aside(&mut self, lines: Vec<u8>) -> bool {
        let n = lines.iter().filter(|b| **b == b'\n').count() as u64;
        let mut path = self.config.spool_path.clone().into_os_string();
        path.push(".rejected");
        let kept = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(&lines)?;
            f.sync_data()
        })
        .await;
        match kept {
            Ok(Ok(())) => {
                self.stats.spool_rejected.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(
                    lines = n,
                    "usage spool lines could not be read back; kept aside in the .rejected file"
                );
                true
            }
            _ => {
                tracing::error!(
                    lines = n,
                    "usage spool lines could not be read back or kept aside"
                );
                false
            }
        }
    }

    /// Replays the spool into the store, in order, then truncates it. A failure leaves the spool
    /// as it is (records already stored are skipped on the next replay).
    async fn replay(&mut self) {
        let path = self.config.spool_path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await;
        let Ok(Ok(bytes)) = read else { return };
        let mut records: Vec<UsageRecord> = Vec::new();
        let mut rejected: Vec<u8> = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice(line) {
                Ok(r) => records.push(r),
                Err(_) => {
                    rejected.extend_from_slice(line);
                    rejected.push(b'\n');
                }
            }
        }
        if !rejected.is_empty() && !self.set_aside(rejected).await {
            return;
        }
        for chunk in records.chunks(self.config.batch_size.max(1)) {
            if !self.store_batch(chunk).await {
                return;
            }
        }
        let path = self.config.spool_path.clone();
        let truncated = tokio::task::spawn_blocking(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(0)?;
            f.sync_all()
        })
        .await;
        if matches!(truncated, Ok(Ok(()))) {
            tracing::info!(records = records.len(), "usage spool replayed");
            self.stats.spool_bytes.store(0, Ordering::Relaxed);
            self.stats.spool_full.store(false, Ordering::Relaxed);
        }
    }
}
