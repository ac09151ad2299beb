//! The usage store: one trait, [`UsageStore`], with two implementations sharing their SQL
//! (SQLite, the embedded default, and PostgreSQL for shared deployments), and the report
//! computation on top of it.

pub mod report;
pub mod rollup;
mod sql;

pub use report::{Dimension, ReportQuery, ReportRow, render_csv, render_json};

use super::record::{CapturedContent, UsageRecord};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one we can use.
    #[error("invalid store URL: {reason}")]
    Url {
        /// What is wrong.
        reason: String,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A router process registered on a shared store (for a license's instance limit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instance {
    /// A random id per process start.
    pub instance_id: String,
    /// Its host.
    pub hostname: String,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// Its last heartbeat (Unix ms).
    pub last_seen_ms: i64,
}

/// Rows of a bucketed aggregate: dimension values, bucket, and the measures.
pub type BucketRows = Vec<(Vec<String>, i32, report::Measures)>;

/// Which recent records to list (the console's Requests page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentQuery {
    /// Only records that started before this (Unix ms): the page cursor.
    pub before_ms: i64,
    /// Only this caller's.
    pub caller: Option<String>,
    /// Only this group's.
    pub group: Option<String>,
    /// Only `ok` or `error`.
    pub status: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// Where usage records live.
pub trait UsageStore: Send + Sync + std::fmt::Debug {
    /// Creates or upgrades the schema.
    fn migrate(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Whether the database answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Stores a batch; records already stored (same `record_id`) are skipped.
    fn insert<'a>(&'a self, batch: &'a [UsageRecord]) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Aggregates by the query's dimensions and a latency bucket (`ttft` picks the TTFT bucket).
    fn aggregate<'a>(
        &'a self,
        q: &'a ReportQuery,
        ttft: bool,
    ) -> BoxFuture<'a, Result<BucketRows, StoreError>>;
    /// The earliest and latest `started_at_ms` in `[from_ms, to_ms)`, if any record is there.
    fn time_bounds(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> BoxFuture<'_, Result<Option<(i64, i64)>, StoreError>>;
    /// Every record with this request id.
    fn by_request_id<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<UsageRecord>, StoreError>>;
    /// Streams the records of a time range (ms, half-open) in time order into `tx`, in
    /// constant memory; stops when the receiver goes away.
    fn export(
        &self,
        from_ms: i64,
        to_ms: i64,
        tx: mpsc::Sender<Result<UsageRecord, StoreError>>,
    ) -> BoxFuture<'_, ()>;
    /// Deletes up to `limit` records older than `before_ms`; returns how many.
    fn purge_batch(&self, before_ms: i64, limit: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Registers `me` among the live instances (heartbeat at or after `live_after_ms`) unless
    /// `max` others are live: returns those others when refused (empty when registered).
    fn register_instance<'a>(
        &'a self,
        me: &'a Instance,
        max: u32,
        live_after_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<Instance>, StoreError>>;
    /// Refreshes an instance's heartbeat (registering it again if its row is gone).
    fn heartbeat<'a>(
        &'a self,
        me: &'a Instance,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Removes an instance (at shutdown).
    fn deregister<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Instances whose heartbeat is at or after `live_after_ms`.
    fn live_instances(
        &self,
        live_after_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<Instance>, StoreError>>;
    /// Whether other processes share this store (PostgreSQL), so instances are counted.
    fn shared(&self) -> bool;
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// How many usage records the store holds.
    fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Writes a consistent copy of the usage records into the directory `dir` while the router
    /// keeps writing: SQLite, a database file made with `VACUUM INTO`; PostgreSQL, the table as
    /// CSV from `COPY ... TO STDOUT` (counted in the same snapshot). Returns the file's name and
    /// how many records it holds.
    fn snapshot<'a>(
        &'a self,
        dir: &'a std::path::Path,
    ) -> BoxFuture<'a, Result<(String, u64), StoreError>>;
    /// Stores one request's captured content.
    fn insert_capture<'a>(
        &'a self,
        c: &'a CapturedContent,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The captured content of a request (every hop and record that captured), oldest first.
    fn captures<'a>(
        &'a self,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CapturedContent>, StoreError>>;
    /// Every captured content row, oldest first (for backups; retention keeps it bounded).
    fn all_captures(&self) -> BoxFuture<'_, Result<Vec<CapturedContent>, StoreError>>;
    /// Deletes captured content whose retention ended by `now_ms`; returns how many.
    fn purge_captures(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// The hourly rollups of hours `[from_hour, to_hour)` (hours since the epoch), per hour
    /// or (`per_day`) per UTC day.
    fn rollup(
        &self,
        from_hour: i64,
        to_hour: i64,
        per_day: bool,
    ) -> BoxFuture<'_, Result<rollup::Rollup, StoreError>>;
    /// The newest records before `q.before_ms` matching its filters, newest first.
    fn recent<'a>(
        &'a self,
        q: &'a RecentQuery,
    ) -> BoxFuture<'a, Result<Vec<UsageRecord>, StoreError>>;
    /// USD spent since `from_ms` by requests whose `column` (`caller`, `project`, `team`,
    /// `environment`; `None`: everyone) is `subject`, to `groups` (`None`: any group) — what a
    /// budget's counter is rebuilt from.
    fn spend<'a>(
        &'a self,
        column: Option<&'static str>,
        subject: &'a str,
        groups: Option<&'a [String]>,
        from_ms: i64,
    ) -> BoxFuture<'a, Result<f64, StoreError>>;
}

/// The usage schema's version: 1, plus one per column added since (see `ADDED_COLUMNS`).
pub const SCHEMA_VERSION: u32 = sql::SCHEMA_VERSION;

/// Loads a [`UsageStore::snapshot`] (of a `kind` store, file `file`) into the empty store at
/// `url`, creating its schema; returns how many records it holds afterwards. SQLite snapshots
/// load into SQLite or PostgreSQL, PostgreSQL snapshots into PostgreSQL.
pub async fn load_snapshot(
    url: &str,
    kind: &str,
    file: &std::path::Path,
) -> Result<u64, StoreError> {
    sql::load_snapshot(url, kind, file).await
}

/// Opens the store a URL names (`sqlite://PATH`, `postgres://...`; `?schema=NAME` picks a
/// PostgreSQL schema). Connections are made lazily: a database that is down now does not stop
/// the router from starting (records are spooled until it is back).
pub fn open(url: &str) -> Result<Arc<dyn UsageStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sql::SqliteStore::open(url)?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(sql::PostgresStore::open(url)?))
    } else {
        Err(StoreError::Url {
            reason: "expected sqlite:// or postgres://".into(),
        })
    }
}
