//! Retention: records older than `store.retention_days` are deleted in bounded batches, hourly
//! and at start. Purged records are gone from every report and export. Captured content is
//! purged on the same schedule when its own policy's retention ends.

use super::store::{StoreError, UsageStore};
use std::time::Duration;
use tokio::sync::watch;

/// Records deleted per statement.
const BATCH: i64 = 10_000;

/// Deletes every record older than `before_ms`, in batches; returns how many.
pub async fn purge(store: &dyn UsageStore, before_ms: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.purge_batch(before_ms, BATCH).await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// The cut-off for `days` of retention, Unix ms.
pub fn cutoff_ms(days: u32) -> i64 {
    crate::time::now_ms() - i64::from(days) * 86_400_000
}

/// Purges hourly until `shutdown` turns true: usage records older than `days` (`0` keeps
/// them all) and captured content past its policy's retention.
pub async fn run(
    store: std::sync::Arc<dyn UsageStore>,
    days: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if days > 0 {
                    match purge(store.as_ref(), cutoff_ms(days)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, days, "usage retention purge"),
                        Err(e) => tracing::warn!(error = %e, "usage retention purge failed"),
                    }
                }
                match store.purge_captures(crate::time::now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "captured content retention purge"),
                    Err(e) => tracing::warn!(error = %e, "captured content purge failed"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
