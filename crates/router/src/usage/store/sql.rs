//! The two SQL implementations of [`UsageStore`]. Dynamic SQL here is assembled only from
//! constants and validated identifiers; every value is a bind parameter.
//! The statements are the same for both
//! databases (standard SQL, `ON CONFLICT DO NOTHING`); only the column types and connection
//! setup differ, so one macro generates both.

use super::report::Measures;
use super::{BucketRows, Instance, RecentQuery, ReportQuery, StoreError, UsageStore};
use crate::usage::record::{CapturedContent, UsageRecord, latency_bucket};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use sqlx::Row;
use std::str::FromStr;
use tokio::sync::mpsc;

/// Columns in insert order.
const COLUMNS: &str = "record_id, request_id, parent_id, started_at_ms, caller, project, team, environment, client, surface, group_name, provider, model, status, http_status, error_kind, attempts, attempts_json, fallback, stream, latency_ms, ttft_ms, input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd, warnings, affinity_hit, latency_bucket, ttft_bucket, quota, annotations, config_hash, capture_policy, routing_rule";

/// Registers an instance, or refreshes its heartbeat (re-creating a row removed meanwhile).
const UPSERT_INSTANCE: &str = "INSERT INTO router_instances (instance_id, hostname, started_at_ms, last_seen_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (instance_id) DO UPDATE SET last_seen_ms = EXCLUDED.last_seen_ms";

/// Rows per INSERT statement: a batch is cut into statements of these sizes (largest first), so
/// there are only four distinct statements, each parsed and planned once per connection and
/// then reused from sqlx's statement cache (64 rows x 32 columns stays far under either
/// database's bind limit).
const CHUNK_SIZES: [usize; 4] = [64, 16, 4, 1];

/// The statement (an index into [`CHUNK_SIZES`]) for the next rows of `rest`: the most rows
/// whose parameters stay within `max_bytes` on the wire (one row goes whatever its size).
fn next_chunk(rest: &[UsageRecord], max_bytes: usize) -> usize {
    CHUNK_SIZES
        .iter()
        .position(|&n| {
            n <= rest.len()
                && (n == 1
                    || max_bytes == usize::MAX
                    || rest[..n].iter().map(wire_bytes).sum::<usize>() <= max_bytes)
        })
        .expect("the smallest chunk is one row")
}

/// About how many bytes a record takes as bound parameters on the wire (text as it is, a length
/// word per parameter, eight bytes per number).
fn wire_bytes(r: &UsageRecord) -> usize {
    let text = [
        &r.record_id,
        &r.request_id,
        &r.client,
        &r.surface,
        &r.status,
        &r.attempts_json,
        &r.warnings,
        &r.annotations,
        &r.config_hash,
    ];
    let optional = [
        &r.parent_id,
        &r.caller,
        &r.project,
        &r.team,
        &r.environment,
        &r.group,
        &r.provider,
        &r.model,
        &r.error_kind,
        &r.quota,
        &r.capture_policy,
        &r.rule,
    ];
    text.iter().map(|t| t.len()).sum::<usize>()
        + optional
            .iter()
            .map(|t| t.as_ref().map_or(0, String::len))
            .sum::<usize>()
        + 12 * COLUMN_COUNT
}

/// Columns of `usage_records` an INSERT binds.
const COLUMN_COUNT: usize = {
    let (b, mut i, mut n) = (COLUMNS.as_bytes(), 0, 1);
    while i < b.len() {
        if b[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
};

/// Which records of a batch an insert stored.
enum Inserted {
    /// Every one (none was there before).
    All,
    /// Some were there before; which ones is not known (the insert is redone asking).
    SomeWereThere,
    /// These record ids.
    These(std::collections::HashSet<String>),
}

/// The DDL, with the backend's type names substituted.
fn ddl(text: &str, int: &str, big: &str, real: &str, boolean: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS usage_records (
            record_id {text} PRIMARY KEY, request_id {text} NOT NULL, parent_id {text},
            started_at_ms {big} NOT NULL, caller {text}, project {text}, team {text}, environment {text},
            client {text} NOT NULL, surface {text} NOT NULL, group_name {text}, provider {text}, model {text},
            status {text} NOT NULL, http_status {int} NOT NULL, error_kind {text}, attempts {int} NOT NULL,
            attempts_json {text} NOT NULL, fallback {boolean} NOT NULL, stream {boolean} NOT NULL,
            latency_ms {real} NOT NULL, ttft_ms {real}, input_tokens {big} NOT NULL, cached_tokens {big} NOT NULL,
            cache_write_tokens {big} NOT NULL, output_tokens {big} NOT NULL, reasoning_tokens {big} NOT NULL,
            cost_usd {real} NOT NULL, warnings {text} NOT NULL, affinity_hit {boolean},
            latency_bucket {int} NOT NULL, ttft_bucket {int}, quota {text},
            annotations {text} NOT NULL DEFAULT '[]', config_hash {text} NOT NULL DEFAULT '',
            capture_policy {text}, routing_rule {text})"
        ),
        "CREATE INDEX IF NOT EXISTS usage_records_started ON usage_records (started_at_ms)".into(),
        "CREATE INDEX IF NOT EXISTS usage_records_request ON usage_records (request_id)".into(),
        format!(
            "CREATE TABLE IF NOT EXISTS router_instances (
            instance_id {text} PRIMARY KEY, hostname {text} NOT NULL,
            started_at_ms {big} NOT NULL, last_seen_ms {big} NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS captured_content (
            capture_id {text} PRIMARY KEY, request_id {text} NOT NULL, policy {text} NOT NULL,
            captured_at_ms {big} NOT NULL, expires_at_ms {big} NOT NULL, surface {text} NOT NULL,
            request_body {text} NOT NULL, request_truncated {boolean} NOT NULL,
            response_body {text} NOT NULL, response_truncated {boolean} NOT NULL,
            pii_redacted {boolean} NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS captured_content_request ON captured_content (request_id)".into(),
        "CREATE INDEX IF NOT EXISTS captured_content_expires ON captured_content (expires_at_ms)".into(),
    ]
}

/// The schema's version: the first release's table is 1, each added column one more.
pub(super) const SCHEMA_VERSION: u32 = 1 + ADDED_COLUMNS.len() as u32;

/// Columns added after the first release, with their type (as `ddl` spells it) and default:
/// `migrate` adds those an older table lacks.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("quota", "TEXT"),
    ("annotations", "TEXT NOT NULL DEFAULT '[]'"),
    ("config_hash", "TEXT NOT NULL DEFAULT ''"),
    ("capture_policy", "TEXT"),
    ("routing_rule", "TEXT"),
];

/// The SQL expression of a report dimension (text, or an integer for day and hour).
fn dimension_sql(d: super::Dimension) -> &'static str {
    use super::Dimension::*;
    match d {
        Caller => "COALESCE(caller, '')",
        Project => "COALESCE(project, '')",
        Team => "COALESCE(team, '')",
        Environment => "COALESCE(environment, '')",
        Client => "client",
        Surface => "surface",
        Group => "COALESCE(group_name, '')",
        Provider => "COALESCE(provider, '')",
        Model => "COALESCE(model, '')",
        Status => "status",
        Quota => "COALESCE(quota, '')",
        Rule => "COALESCE(routing_rule, '')",
        Day => "(started_at_ms / 86400000)",
        Hour => "(started_at_ms / 3600000)",
    }
}

macro_rules! sql_store {
    ($name:ident, $db:ty, $pool:ty, $types:expr) => {
        /// A usage store on this database.
        #[derive(Debug)]
        pub(crate) struct $name {
            pool: $pool,
            schema: Option<String>,
        }

        impl $name {
            /// The INSERT statement for `CHUNK_SIZES[i]` rows, in this database's placeholder
            /// syntax (built once); `returning`: each stored row's `record_id` comes back.
            fn insert_sql(i: usize, returning: bool) -> &'static str {
                static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
                &SQL.get_or_init(|| {
                    [" ON CONFLICT (record_id) DO NOTHING", " ON CONFLICT (record_id) DO NOTHING RETURNING record_id"].map(|tail| {
                        CHUNK_SIZES
                            .iter()
                            .map(|&n| {
                                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO usage_records ({COLUMNS}) "));
                                qb.push_values(0..n, |mut b, _| {
                                    for _ in 0..COLUMN_COUNT {
                                        b.push_bind(0i64);
                                    }
                                });
                                qb.push(tail);
                                qb.into_string()
                            })
                            .collect()
                    })
                })[usize::from(returning)][i]
            }

            /// Inserts the batch's records in `tx`. Without `returning`: [`Inserted::All`], or
            /// [`Inserted::SomeWereThere`] at the first chunk that stored fewer rows than it had
            /// (the caller rolls back). With `returning`: the ids of the records stored now.
            async fn insert_rows(
                tx: &mut sqlx::Transaction<'static, $db>,
                batch: &[UsageRecord],
                returning: bool,
            ) -> Result<Inserted, StoreError> {
                let mut stored = std::collections::HashSet::new();
                let mut rest = batch;
                while !rest.is_empty() {
                    let i = next_chunk(rest, Self::MAX_STATEMENT_BYTES);
                    let n = CHUNK_SIZES[i];
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    let mut q = sqlx::query::<$db>(Self::insert_sql(i, returning));
                    for r in chunk {
                        q = q
                            .bind(&r.record_id)
                            .bind(&r.request_id)
                            .bind(&r.parent_id)
                            .bind(r.started_at_ms)
                            .bind(&r.caller)
                            .bind(&r.project)
                            .bind(&r.team)
                            .bind(&r.environment)
                            .bind(&r.client)
                            .bind(&r.surface)
                            .bind(&r.group)
                            .bind(&r.provider)
                            .bind(&r.model)
                            .bind(&r.status)
                            .bind(r.http_status)
                            .bind(&r.error_kind)
                            .bind(r.attempts)
                            .bind(&r.attempts_json)
                            .bind(r.fallback)
                            .bind(r.stream)
                            .bind(r.latency_ms)
                            .bind(r.ttft_ms)
                            .bind(r.input_tokens)
                            .bind(r.cached_tokens)
                            .bind(r.cache_write_tokens)
                            .bind(r.output_tokens)
                            .bind(r.reasoning_tokens)
                            .bind(r.cost_usd)
                            .bind(&r.warnings)
                            .bind(r.affinity_hit)
                            .bind(latency_bucket(r.latency_ms))
                            .bind(r.ttft_ms.map(latency_bucket))
                            .bind(&r.quota)
                            .bind(&r.annotations)
                            .bind(&r.config_hash)
                            .bind(&r.capture_policy)
                            .bind(&r.rule);
                    }
                    if returning {
                        for row in q.fetch_all(&mut **tx).await? {
                            stored.insert(row.try_get::<String, _>(0)?);
                        }
                    } else if q.execute(&mut **tx).await?.rows_affected() != n as u64 {
                        return Ok(Inserted::SomeWereThere);
                    }
                }
                Ok(if returning { Inserted::These(stored) } else { Inserted::All })
            }

            /// One `router_instances` row.
            fn decode_instance(r: &<$db as sqlx::Database>::Row) -> Result<Instance, sqlx::Error> {
                Ok(Instance {
                    instance_id: r.try_get("instance_id")?,
                    hostname: r.try_get("hostname")?,
                    started_at_ms: r.try_get("started_at_ms")?,
                    last_seen_ms: r.try_get("last_seen_ms")?,
                })
            }

            /// One `captured_content` row.
            fn decode_capture(r: &<$db as sqlx::Database>::Row) -> Result<CapturedContent, sqlx::Error> {
                Ok(CapturedContent {
                    capture_id: r.try_get("capture_id")?,
                    request_id: r.try_get("request_id")?,
                    policy: r.try_get("policy")?,
                    captured_at_ms: r.try_get("captured_at_ms")?,
                    expires_at_ms: r.try_get("expires_at_ms")?,
                    surface: r.try_get("surface")?,
                    request_body: r.try_get("request_body")?,
                    request_truncated: r.try_get("request_truncated")?,
                    response_body: r.try_get("response_body")?,
                    response_truncated: r.try_get("response_truncated")?,
                    pii_redacted: r.try_get("pii_redacted")?,
                })
            }

            fn decode(row: &<$db as sqlx::Database>::Row) -> Result<UsageRecord, sqlx::Error> {
                Ok(UsageRecord {
                    record_id: row.try_get("record_id")?,
                    request_id: row.try_get("request_id")?,
                    parent_id: row.try_get("parent_id")?,
                    started_at_ms: row.try_get("started_at_ms")?,
                    caller: row.try_get("caller")?,
                    project: row.try_get("project")?,
                    team: row.try_get("team")?,
                    environment: row.try_get("environment")?,
                    client: row.try_get("client")?,
                    surface: row.try_get("surface")?,
                    group: row.try_get("group_name")?,
                    provider: row.try_get("provider")?,
                    model: row.try_get("model")?,
                    status: row.try_get("status")?,
                    http_status: row.try_get("http_status")?,
                    error_kind: row.try_get("error_kind")?,
                    attempts: row.try_get("attempts")?,
                    attempts_json: row.try_get("attempts_json")?,
                    fallback: row.try_get("fallback")?,
                    stream: row.try_get("stream")?,
                    latency_ms: row.try_get("latency_ms")?,
                    ttft_ms: row.try_get("ttft_ms")?,
                    input_tokens: row.try_get("input_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    cache_write_tokens: row.try_get("cache_write_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    reasoning_tokens: row.try_get("reasoning_tokens")?,
                    cost_usd: row.try_get("cost_usd")?,
                    warnings: row.try_get("warnings")?,
                    affinity_hit: row.try_get("affinity_hit")?,
                    quota: row.try_get("quota")?,
                    annotations: row.try_get("annotations")?,
                    config_hash: row.try_get("config_hash")?,
                    capture_policy: row.try_get("capture_policy")?,
                    rule: row.try_get("routing_rule")?,
                })
            }
        }

        impl UsageStore for $name {
            fn migrate(&self) -> BoxFuture<'_, Result<(), StoreError>> {
                Box::pin(async move {
                    // One transaction, serialized between processes where the database needs
                    // it: replicas starting together on a fresh PostgreSQL would otherwise race
                    // in CREATE ... IF NOT EXISTS and all but one fail.
                    let mut tx = self.pool.begin().await?;
                    if let Some(lock) = Self::MIGRATE_LOCK {
                        sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    if let Some(s) = &self.schema {
                        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))).execute(&mut *tx).await?;
                    }
                    let (text, int, big, real, boolean) = $types;
                    for stmt in ddl(text, int, big, real, boolean) {
                        sqlx::query(sqlx::AssertSqlSafe(stmt)).execute(&mut *tx).await?;
                    }
                    for stmt in super::rollup::ddl(text, int, big, real) {
                        sqlx::query(sqlx::AssertSqlSafe(stmt)).execute(&mut *tx).await?;
                    }
                    for (column, ty) in ADDED_COLUMNS {
                        let present: i64 = sqlx::query_scalar(Self::COLUMN_EXISTS)
                            .bind(*column)
                            .fetch_one(&mut *tx)
                            .await?;
                        if present == 0 {
                            let stmt = format!("ALTER TABLE usage_records ADD COLUMN {column} {ty}");
                            sqlx::query(sqlx::AssertSqlSafe(stmt)).execute(&mut *tx).await?;
                        }
                    }
                    // Records without rollups (a store from before them, or a restore that
                    // copied records in): build them once.
                    let due: i64 = sqlx::query_scalar(super::rollup::NEEDS_REBUILD).fetch_one(&mut *tx).await?;
                    if due == 1 {
                        for stmt in super::rollup::REBUILD {
                            sqlx::query(stmt).execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                })
            }

            fn insert<'a>(&'a self, batch: &'a [UsageRecord]) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    // Records are new but for replays: insert without a row back per record
                    // (on SQLite each would cross from its worker thread), and only when some
                    // record was already stored, start over asking which ones were stored now.
                    let mut tx = self.pool.begin().await?;
                    let mut inserted = Self::insert_rows(&mut tx, batch, false).await?;
                    if matches!(inserted, Inserted::SomeWereThere) {
                        tx.rollback().await?;
                        tx = self.pool.begin().await?;
                        inserted = Self::insert_rows(&mut tx, batch, true).await?;
                    }
                    let stored = |r: &&UsageRecord| match &inserted {
                        Inserted::These(ids) => ids.contains(&r.record_id),
                        _ => true,
                    };
                    // Only what was stored now counts: a replayed record is in the rollups once.
                    let (sums, hist) = super::rollup::deltas(batch.iter().filter(stored));
                    let sums: Vec<_> = sums.into_iter().collect();
                    for chunk in sums.chunks(super::rollup::UPSERT_CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(super::rollup::UPSERT_HOURLY);
                        qb.push_values(chunk, |mut b, ((hour, caller, project, group, model), s)| {
                            b.push_bind(*hour).push_bind(caller.clone()).push_bind(project.clone())
                                .push_bind(group.clone()).push_bind(model.clone()).push_bind(s.requests)
                                .push_bind(s.errors).push_bind(s.input_tokens).push_bind(s.output_tokens)
                                .push_bind(s.cost_usd);
                        });
                        qb.push(super::rollup::ON_CONFLICT_HOURLY);
                        qb.build().execute(&mut *tx).await?;
                    }
                    let hist: Vec<_> = hist.into_iter().collect();
                    for chunk in hist.chunks(super::rollup::UPSERT_CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(super::rollup::UPSERT_LATENCY);
                        qb.push_values(chunk, |mut b, ((hour, bucket), n)| {
                            b.push_bind(*hour).push_bind(*bucket).push_bind(*n);
                        });
                        qb.push(super::rollup::ON_CONFLICT_LATENCY);
                        qb.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn aggregate<'a>(&'a self, q: &'a ReportQuery, ttft: bool) -> BoxFuture<'a, Result<BucketRows, StoreError>> {
                Box::pin(async move {
                    let dims: Vec<&str> = q.group_by.iter().map(|d| dimension_sql(*d)).collect();
                    let bucket = if ttft { "ttft_bucket" } else { "latency_bucket" };
                    let mut select = String::from("SELECT ");
                    for (i, d) in dims.iter().enumerate() {
                        select.push_str(&format!("{d} AS d{i}, "));
                    }
                    if ttft {
                        // Only the histogram is needed for TTFT: counts, no sums.
                        select.push_str(&format!("{bucket} AS b, COUNT(*) AS n FROM usage_records WHERE started_at_ms >= "));
                    } else {
                        select.push_str(&format!(
                            "{bucket} AS b, COUNT(*) AS n, \
                             CAST(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
                             CAST(SUM(CASE WHEN fallback THEN 1 ELSE 0 END) AS BIGINT) AS fallbacks, \
                             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
                             CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
                             CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens, SUM(cost_usd) AS cost_usd \
                             FROM usage_records WHERE started_at_ms >= "
                        ));
                    }
                    let mut qb = sqlx::QueryBuilder::<$db>::new(select);
                    qb.push_bind(q.from_ms).push(" AND started_at_ms < ").push_bind(q.to_ms);
                    if let Some(c) = &q.caller {
                        qb.push(" AND caller = ").push_bind(c.clone());
                    }
                    if ttft {
                        qb.push(" AND ttft_bucket IS NOT NULL");
                    }
                    qb.push(" GROUP BY ");
                    for d in &dims {
                        qb.push(*d).push(", ");
                    }
                    qb.push(bucket);
                    let rows = qb.build().fetch_all(&self.pool).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let keys = (0..dims.len())
                            .map(|i| {
                                let col = format!("d{i}");
                                row.try_get::<String, _>(col.as_str())
                                    .or_else(|_| row.try_get::<i64, _>(col.as_str()).map(|n| n.to_string()))
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let b: i32 = row.try_get("b")?;
                        let requests = row.try_get::<i64, _>("n")?;
                        if ttft {
                            out.push((keys, b, Measures { requests, ..Measures::default() }));
                            continue;
                        }
                        let m = Measures {
                            requests,
                            errors: row.try_get::<Option<i64>, _>("errors")?.unwrap_or(0),
                            fallbacks: row.try_get::<Option<i64>, _>("fallbacks")?.unwrap_or(0),
                            input_tokens: row.try_get::<Option<i64>, _>("input_tokens")?.unwrap_or(0),
                            cached_tokens: row.try_get::<Option<i64>, _>("cached_tokens")?.unwrap_or(0),
                            cache_write_tokens: row.try_get::<Option<i64>, _>("cache_write_tokens")?.unwrap_or(0),
                            output_tokens: row.try_get::<Option<i64>, _>("output_tokens")?.unwrap_or(0),
                            reasoning_tokens: row.try_get::<Option<i64>, _>("reasoning_tokens")?.unwrap_or(0),
                            cost_usd: row.try_get::<Option<f64>, _>("cost_usd")?.unwrap_or(0.0),
                        };
                        out.push((keys, b, m));
                    }
                    Ok(out)
                })
            }

            fn time_bounds(&self, from_ms: i64, to_ms: i64) -> BoxFuture<'_, Result<Option<(i64, i64)>, StoreError>> {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT MIN(started_at_ms) AS lo, MAX(started_at_ms) AS hi FROM usage_records WHERE started_at_ms >= {} AND started_at_ms < {}",
                        Self::PLACEHOLDER_1, Self::PLACEHOLDER_2
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from_ms).bind(to_ms).fetch_one(&self.pool).await?;
                    let lo: Option<i64> = row.try_get("lo")?;
                    let hi: Option<i64> = row.try_get("hi")?;
                    Ok(lo.zip(hi))
                })
            }

            fn by_request_id<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<Vec<UsageRecord>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM usage_records WHERE request_id = {} ORDER BY started_at_ms, record_id",
                        Self::PLACEHOLDER_1
                    )))
                    .bind(request_id)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(Self::decode).collect::<Result<Vec<_>, _>>()?)
                })
            }

            fn export(&self, from_ms: i64, to_ms: i64, tx: mpsc::Sender<Result<UsageRecord, StoreError>>) -> BoxFuture<'_, ()> {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT {COLUMNS} FROM usage_records WHERE started_at_ms >= {} AND started_at_ms < {} ORDER BY started_at_ms, record_id",
                        Self::PLACEHOLDER_1, Self::PLACEHOLDER_2
                    );
                    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from_ms).bind(to_ms).fetch(&self.pool);
                    loop {
                        let item = match rows.try_next().await {
                            Ok(Some(row)) => Self::decode(&row).map_err(StoreError::from),
                            Ok(None) => return,
                            Err(e) => Err(StoreError::from(e)),
                        };
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                })
            }

            fn purge_batch(&self, before_ms: i64, limit: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(async move {
                    let sql = format!(
                        "DELETE FROM usage_records WHERE record_id IN (SELECT record_id FROM usage_records WHERE started_at_ms < {} LIMIT {})",
                        Self::PLACEHOLDER_1, Self::PLACEHOLDER_2
                    );
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before_ms).bind(limit).execute(&self.pool).await?;
                    // The rollups of hours wholly before the cut go with their records.
                    for table in ["usage_hourly", "usage_hourly_latency"] {
                        let sql = format!("DELETE FROM {table} WHERE hour < {}", Self::PLACEHOLDER_1);
                        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before_ms.div_euclid(3_600_000)).execute(&self.pool).await?;
                    }
                    Ok(done.rows_affected())
                })
            }

            fn register_instance<'a>(
                &'a self,
                me: &'a Instance,
                max: u32,
                live_after_ms: i64,
            ) -> BoxFuture<'a, Result<Vec<Instance>, StoreError>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    // Serialized between processes (PostgreSQL): two replicas starting together
                    // cannot both take the last slot.
                    if let Some(lock) = Self::INSTANCE_LOCK {
                        sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    // Rows of instances gone for a day are history, not slots.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM router_instances WHERE last_seen_ms < {}",
                        Self::PLACEHOLDER_1
                    )))
                    .bind(live_after_ms - 86_400_000)
                    .execute(&mut *tx)
                    .await?;
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT instance_id, hostname, started_at_ms, last_seen_ms FROM router_instances WHERE last_seen_ms >= {} AND instance_id <> {} ORDER BY started_at_ms",
                        Self::PLACEHOLDER_1, Self::PLACEHOLDER_2
                    )))
                    .bind(live_after_ms)
                    .bind(&me.instance_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    let live: Vec<Instance> = rows
                        .iter()
                        .map(Self::decode_instance)
                        .collect::<Result<_, _>>()?;
                    if live.len() >= max as usize {
                        return Ok(live);
                    }
                    sqlx::query::<$db>(UPSERT_INSTANCE)
                    .bind(&me.instance_id)
                    .bind(&me.hostname)
                    .bind(me.started_at_ms)
                    .bind(me.last_seen_ms)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(Vec::new())
                })
            }

            fn heartbeat<'a>(&'a self, me: &'a Instance, now_ms: i64) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query::<$db>(UPSERT_INSTANCE)
                        .bind(&me.instance_id)
                        .bind(&me.hostname)
                        .bind(me.started_at_ms)
                        .bind(now_ms)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn deregister<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM router_instances WHERE instance_id = {}",
                        Self::PLACEHOLDER_1
                    )))
                    .bind(instance_id)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn live_instances(&self, live_after_ms: i64) -> BoxFuture<'_, Result<Vec<Instance>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT instance_id, hostname, started_at_ms, last_seen_ms FROM router_instances WHERE last_seen_ms >= {} ORDER BY started_at_ms",
                        Self::PLACEHOLDER_1
                    )))
                    .bind(live_after_ms)
                    .fetch_all(&self.pool)
                    .await?;
                    let out = rows
                        .iter()
                        .map(Self::decode_instance)
                        .collect::<Result<_, _>>()?;
                    Ok(out)
                })
            }

            fn shared(&self) -> bool {
                Self::SHARED
            }

            fn kind(&self) -> &'static str {
                Self::KIND
            }

            fn count(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(async move {
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records")
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(n as u64)
                })
            }

            fn snapshot<'a>(
                &'a self,
                dir: &'a std::path::Path,
            ) -> BoxFuture<'a, Result<(String, u64), StoreError>> {
                Box::pin(self.snapshot_into(dir))
            }

            fn insert_capture<'a>(&'a self, c: &'a CapturedContent) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    sqlx::query::<$db>(
                        "INSERT INTO captured_content (capture_id, request_id, policy, captured_at_ms, expires_at_ms, surface, request_body, request_truncated, response_body, response_truncated, pii_redacted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (capture_id) DO NOTHING",
                    )
                    .bind(&c.capture_id)
                    .bind(&c.request_id)
                    .bind(&c.policy)
                    .bind(c.captured_at_ms)
                    .bind(c.expires_at_ms)
                    .bind(&c.surface)
                    .bind(&c.request_body)
                    .bind(c.request_truncated)
                    .bind(&c.response_body)
                    .bind(c.response_truncated)
                    .bind(c.pii_redacted)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn captures<'a>(&'a self, request_id: &'a str) -> BoxFuture<'a, Result<Vec<CapturedContent>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query::<$db>(
                        "SELECT * FROM captured_content WHERE request_id = $1 ORDER BY captured_at_ms, capture_id",
                    )
                    .bind(request_id)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(Self::decode_capture).collect::<Result<_, _>>()?)
                })
            }

            fn all_captures(&self) -> BoxFuture<'_, Result<Vec<CapturedContent>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query::<$db>(
                        "SELECT * FROM captured_content ORDER BY captured_at_ms, capture_id",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(Self::decode_capture).collect::<Result<_, _>>()?)
                })
            }

            fn purge_captures(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(async move {
                    let r = sqlx::query::<$db>("DELETE FROM captured_content WHERE expires_at_ms <= $1")
                        .bind(now_ms)
                        .execute(&self.pool)
                        .await?;
                    Ok(r.rows_affected())
                })
            }

            fn rollup(&self, from_hour: i64, to_hour: i64, per_day: bool) -> BoxFuture<'_, Result<super::rollup::Rollup, StoreError>> {
                Box::pin(async move {
                    use super::rollup::{Rollup, Sums, SUMS};
                    let (p1, p2) = (Self::PLACEHOLDER_1, Self::PLACEHOLDER_2);
                    let t = if per_day { "hour / 24" } else { "hour" };
                    let sums = |r: &<$db as sqlx::Database>::Row| -> Result<Sums, sqlx::Error> {
                        Ok(Sums {
                            requests: r.try_get::<Option<i64>, _>("requests")?.unwrap_or(0),
                            errors: r.try_get::<Option<i64>, _>("errors")?.unwrap_or(0),
                            input_tokens: r.try_get::<Option<i64>, _>("input_tokens")?.unwrap_or(0),
                            output_tokens: r.try_get::<Option<i64>, _>("output_tokens")?.unwrap_or(0),
                            cost_usd: r.try_get::<Option<f64>, _>("cost_usd")?.unwrap_or(0.0),
                        })
                    };
                    let series = format!("SELECT {t} AS t, {SUMS} FROM usage_hourly WHERE hour >= {p1} AND hour < {p2} GROUP BY {t}");
                    let latency = format!(
                        "SELECT {t} AS t, latency_bucket, CAST(SUM(requests) AS BIGINT) AS n FROM usage_hourly_latency \
                         WHERE hour >= {p1} AND hour < {p2} GROUP BY {t}, latency_bucket"
                    );
                    let combos = format!(
                        "SELECT caller, project, group_name, model, {SUMS} FROM usage_hourly \
                         WHERE hour >= {p1} AND hour < {p2} GROUP BY caller, project, group_name, model"
                    );
                    // Three reads at once (each database query runs on one core).
                    let (series, latency, combos) = futures_util::try_join!(
                        sqlx::query(sqlx::AssertSqlSafe(series)).bind(from_hour).bind(to_hour).fetch_all(&self.pool),
                        sqlx::query(sqlx::AssertSqlSafe(latency)).bind(from_hour).bind(to_hour).fetch_all(&self.pool),
                        sqlx::query(sqlx::AssertSqlSafe(combos)).bind(from_hour).bind(to_hour).fetch_all(&self.pool),
                    )?;
                    let mut out = Rollup::default();
                    for r in series {
                        out.series.push((r.try_get("t")?, sums(&r)?));
                    }
                    for r in latency {
                        out.latency.push((r.try_get("t")?, r.try_get("latency_bucket")?, r.try_get("n")?));
                    }
                    let mut combo_sums = Vec::with_capacity(combos.len());
                    for r in combos {
                        combo_sums.push((
                            [r.try_get("caller")?, r.try_get("project")?, r.try_get("group_name")?, r.try_get("model")?],
                            sums(&r)?,
                        ));
                    }
                    out.tops = super::rollup::tops(combo_sums);
                    Ok(out)
                })
            }

            fn recent<'a>(&'a self, q: &'a RecentQuery) -> BoxFuture<'a, Result<Vec<UsageRecord>, StoreError>> {
                Box::pin(async move {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {COLUMNS} FROM usage_records WHERE started_at_ms < "
                    ));
                    qb.push_bind(q.before_ms);
                    for (column, value) in [
                        ("caller", &q.caller),
                        ("group_name", &q.group),
                        ("status", &q.status),
                    ] {
                        if let Some(v) = value {
                            // `column` is one of three constants, never caller input.
                            qb.push(format!(" AND {column} = "));
                            qb.push_bind(v.clone());
                        }
                    }
                    qb.push(" ORDER BY started_at_ms DESC, record_id DESC LIMIT ");
                    qb.push_bind(i64::from(q.limit));
                    let rows = qb.build().fetch_all(&self.pool).await?;
                    Ok(rows.iter().map(Self::decode).collect::<Result<Vec<_>, _>>()?)
                })
            }

            fn spend<'a>(
                &'a self,
                column: Option<&'static str>,
                subject: &'a str,
                groups: Option<&'a [String]>,
                from_ms: i64,
            ) -> BoxFuture<'a, Result<f64, StoreError>> {
                Box::pin(async move {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM usage_records WHERE started_at_ms >= ",
                    );
                    qb.push_bind(from_ms);
                    if let Some(c) = column {
                        // `column` is one of four constants, never caller input.
                        qb.push(format!(" AND {c} = "));
                        qb.push_bind(subject);
                    }
                    if let Some(groups) = groups {
                        qb.push(" AND group_name IN (");
                        let mut sep = qb.separated(", ");
                        for g in groups {
                            sep.push_bind(g);
                        }
                        sep.push_unseparated(")");
                    }
                    let usd: f64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
                    Ok(usd)
                })
            }
        }
    };
}

sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    ("TEXT", "INTEGER", "INTEGER", "REAL", "INTEGER")
);
sql_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::PgPool,
    ("TEXT", "INTEGER", "BIGINT", "DOUBLE PRECISION", "BOOLEAN")
);

impl SqliteStore {
    /// No network between the router and its SQLite file: statements may be any size.
    const MAX_STATEMENT_BYTES: usize = usize::MAX;
    const PLACEHOLDER_1: &'static str = "?1";
    const PLACEHOLDER_2: &'static str = "?2";
    /// SQLite serializes writers itself.
    const MIGRATE_LOCK: Option<&'static str> = None;
    /// Whether `usage_records` has the column named by the bind parameter.
    const COLUMN_EXISTS: &'static str =
        "SELECT COUNT(*) FROM pragma_table_info('usage_records') WHERE name = ?1";
    /// SQLite serializes writers itself.
    const INSTANCE_LOCK: Option<&'static str> = None;
    /// One process per database file: instances are not counted.
    const SHARED: bool = false;
    const KIND: &'static str = "sqlite";

    /// Opens (creating if missing) an SQLite database in WAL mode.
    pub(super) fn open(url: &str) -> Result<Self, StoreError> {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Url {
                reason: e.to_string(),
            })?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        // SQLite takes one writer at a time: one connection for the usage writer and one for
        // reports and exports. More would only add page caches (up to 2 MB each), which made
        // memory step up for minutes under constant load.
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(opts);
        Ok(SqliteStore { pool, schema: None })
    }
}

impl PostgresStore {
    /// Rows an INSERT carries are kept to about this many bytes on the wire, so the kernel
    /// takes each statement in one write: sqlx 0.9.0 leaves Nagle's algorithm on (its
    /// TCP_NODELAY went missing, sqlx issue #4335), and the rest of a statement split over two
    /// writes waits for the server's delayed ACK — 40 ms per statement, which held the writer
    /// to about 1,500 records/s. (The socket's first send buffer takes 16 KB.)
    const MAX_STATEMENT_BYTES: usize = 12 * 1024;
    const PLACEHOLDER_1: &'static str = "$1";
    const PLACEHOLDER_2: &'static str = "$2";
    /// A transaction-scoped advisory lock, the same key for every smart-router process on the
    /// database (the bytes of "smrt-usg" as a number).
    const MIGRATE_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(8317429930127618919)");
    /// Serializes instance registration between processes (another advisory lock key: the
    /// bytes of "smrt-ins" as a number).
    const INSTANCE_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(8317429930126962291)");
    /// Shared by every replica.
    const SHARED: bool = true;
    const KIND: &'static str = "postgres";
    /// Whether `usage_records` (in the current schema) has the column named by the parameter.
    const COLUMN_EXISTS: &'static str = "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'usage_records' AND column_name = $1";

    /// Connects lazily to PostgreSQL; `?schema=NAME` (ours) selects and creates a schema.
    pub(super) fn open(url: &str) -> Result<Self, StoreError> {
        let (base, schema) = split_schema(url);
        let mut opts =
            sqlx::postgres::PgConnectOptions::from_str(&base).map_err(|e| StoreError::Url {
                reason: e.to_string(),
            })?;
        if let Some(s) = &schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(StoreError::Url {
                    reason: "schema names are letters, digits and _".into(),
                });
            }
            opts = opts.options([("search_path", s.as_str())]);
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect_lazy_with(opts);
        Ok(PostgresStore { pool, schema })
    }
}

/// Removes our `schema=NAME` query parameter from a PostgreSQL URL.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

impl SqliteStore {
    /// `VACUUM INTO` a new file in `dir` (a consistent copy, taken while writers go on).
    async fn snapshot_into(&self, dir: &std::path::Path) -> Result<(String, u64), StoreError> {
        let name = "usage.db".to_string();
        let path = dir.join(&name);
        sqlx::query("VACUUM INTO ?1")
            .bind(path.display().to_string())
            .execute(&self.pool)
            .await?;
        let copy = SqliteStore::open(&format!("sqlite://{}", path.display()))?;
        let n = copy.count().await?;
        copy.pool.close().await;
        Ok((name, n))
    }
}

impl PostgresStore {
    /// `COPY usage_records TO STDOUT` as CSV into a file in `dir`, counted in the same
    /// repeatable-read snapshot.
    async fn snapshot_into(&self, dir: &std::path::Path) -> Result<(String, u64), StoreError> {
        use tokio::io::AsyncWriteExt;
        let name = "usage_records.csv".to_string();
        let mut file = tokio::fs::File::create(dir.join(&name))
            .await
            .map_err(|e| StoreError::Url {
                reason: format!("writing the snapshot: {e}"),
            })?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records")
            .fetch_one(&mut *tx)
            .await?;
        {
            let mut rows = tx
                .copy_out_raw(&format!(
                    "COPY usage_records ({COLUMNS}) TO STDOUT WITH (FORMAT csv, HEADER true)"
                ))
                .await?;
            while let Some(chunk) = rows.try_next().await? {
                file.write_all(&chunk).await.map_err(|e| StoreError::Url {
                    reason: format!("writing the snapshot: {e}"),
                })?;
            }
        }
        tx.commit().await?;
        file.sync_all().await.map_err(|e| StoreError::Url {
            reason: format!("writing the snapshot: {e}"),
        })?;
        Ok((name, n as u64))
    }
}

/// See [`super::load_snapshot`].
pub(super) async fn load_snapshot(
    url: &str,
    kind: &str,
    file: &std::path::Path,
) -> Result<u64, StoreError> {
    let refuse = |reason: String| StoreError::Url { reason };
    let target = super::open(url)?;
    target.migrate().await?;
    if target.count().await? > 0 {
        return Err(refuse(
            "the restore target already holds usage records; restore into an empty store".into(),
        ));
    }
    match (kind, target.kind()) {
        ("postgres", "postgres") => {
            let pg = PostgresStore::open(url)?;
            let text = tokio::fs::read(file)
                .await
                .map_err(|e| refuse(format!("reading {}: {e}", file.display())))?;
            // The snapshot's own columns (an older schema has fewer), each one we know.
            let header = text.split(|b| *b == b'\n').next().unwrap_or_default();
            let header = String::from_utf8_lossy(header).trim().to_string();
            let known: Vec<&str> = COLUMNS.split(", ").collect();
            if header.is_empty() || header.split(',').any(|c| !known.contains(&c)) {
                return Err(refuse(format!(
                    "{}: not a usage snapshot (header {:?})",
                    file.display(),
                    crate::bounds::clip(&header, 200)
                )));
            }
            let mut conn = pg.pool.acquire().await?;
            let mut copy = conn
                .copy_in_raw(&format!(
                    "COPY usage_records ({header}) FROM STDIN WITH (FORMAT csv, HEADER true)"
                ))
                .await?;
            copy.send(text).await?;
            copy.finish().await?;
            // The copied records get their rollups.
            drop(conn);
            target.migrate().await?;
        }
        ("sqlite", _) => {
            let source = SqliteStore::open(&format!("sqlite://{}", file.display()))?;
            // An older snapshot gains the columns added since (on the restore's own copy).
            source.migrate().await?;
            let (tx, mut rx) = mpsc::channel(1024);
            let export = tokio::spawn(async move {
                source.export(i64::MIN, i64::MAX, tx).await;
                source.pool.close().await;
            });
            let mut batch = Vec::with_capacity(500);
            while let Some(r) = rx.recv().await {
                batch.push(r?);
                if batch.len() == 500 {
                    target.insert(&batch).await?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                target.insert(&batch).await?;
            }
            let _ = export.await;
        }
        (from, to) => {
            return Err(refuse(format!(
                "a {from} snapshot cannot be loaded into {to} (restore PostgreSQL backups into PostgreSQL)"
            )));
        }
    }
    target.count().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attempts_json: String) -> UsageRecord {
        UsageRecord {
            record_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            request_id: "req_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b".into(),
            parent_id: None,
            started_at_ms: 1_796_000_000_000,
            caller: Some("ci-bot".into()),
            project: Some("platform".into()),
            team: None,
            environment: Some("prod".into()),
            client: "codex".into(),
            surface: "openai_chat".into(),
            group: Some("fast".into()),
            provider: Some("openai".into()),
            model: Some("gpt-4.1-mini".into()),
            status: "ok".into(),
            http_status: 200,
            error_kind: None,
            attempts: 1,
            attempts_json,
            fallback: false,
            stream: true,
            latency_ms: 812.5,
            ttft_ms: Some(120.0),
            input_tokens: 1200,
            cached_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 300,
            reasoning_tokens: 0,
            cost_usd: 0.0012,
            warnings: "[]".into(),
            affinity_hit: None,
            quota: None,
            annotations: "{}".into(),
            config_hash: "5f2c9a0e1b7d".into(),
            capture_policy: None,
            rule: None,
        }
    }

    /// PostgreSQL statements stay within the size the kernel takes in one write, cutting a
    /// batch into fewer rows per statement as records grow; a record larger than the limit
    /// still goes (alone). SQLite takes the largest statement whatever the size.
    #[test]
    fn statements_are_cut_to_the_wire_limit() {
        let limit = PostgresStore::MAX_STATEMENT_BYTES;
        let attempt = r#"[{"provider":"openai","model":"gpt-4.1-mini","status":200,"ms":810}]"#;
        let batch: Vec<_> = (0..1000).map(|_| record(attempt.into())).collect();
        let mut rest = &batch[..];
        let mut statements = 0;
        while !rest.is_empty() {
            let n = CHUNK_SIZES[next_chunk(rest, limit)];
            assert!(rest[..n].iter().map(wire_bytes).sum::<usize>() <= limit);
            rest = &rest[n..];
            statements += 1;
        }
        assert!(
            statements < 100,
            "{statements} statements for 1,000 records"
        );
        assert_eq!(
            CHUNK_SIZES[next_chunk(&batch, SqliteStore::MAX_STATEMENT_BYTES)],
            64
        );
        let big = vec![record("x".repeat(limit * 2)), record(attempt.into())];
        assert_eq!(CHUNK_SIZES[next_chunk(&big, limit)], 1);
        assert!(wire_bytes(&big[0]) > limit);
    }
}
