//! Hourly rollups of the usage records, kept by the store as records are inserted (in the
//! same transaction, counting only records actually stored, so a replayed batch is counted
//! once): sums per (hour, caller, project, group, model) and a latency histogram per hour.
//! The console's overview reads them instead of scanning records, so its cost grows with
//! hours and active combinations, not with requests. Purged with the records; rebuilt from
//! the records when a store has records but no rollups (an upgrade or a restore).

use crate::usage::record::{UsageRecord, latency_bucket};
use std::collections::{BTreeMap, HashMap};

/// The rollup tables, with the backend's type names substituted.
pub(super) fn ddl(text: &str, int: &str, big: &str, real: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS usage_hourly (
            hour {big} NOT NULL, caller {text} NOT NULL, project {text} NOT NULL,
            group_name {text} NOT NULL, model {text} NOT NULL, requests {big} NOT NULL,
            errors {big} NOT NULL, input_tokens {big} NOT NULL, output_tokens {big} NOT NULL,
            cost_usd {real} NOT NULL, PRIMARY KEY (hour, caller, project, group_name, model))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS usage_hourly_latency (
            hour {big} NOT NULL, latency_bucket {int} NOT NULL, requests {big} NOT NULL,
            PRIMARY KEY (hour, latency_bucket))"
        ),
    ]
}

/// Rebuilds both rollups from the records (run when they are empty but records exist).
pub(super) const REBUILD: [&str; 2] = [
    "INSERT INTO usage_hourly (hour, caller, project, group_name, model, requests, errors, input_tokens, output_tokens, cost_usd) \
     SELECT started_at_ms / 3600000, COALESCE(caller, ''), COALESCE(project, ''), COALESCE(group_name, ''), COALESCE(model, ''), \
     COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd) \
     FROM usage_records GROUP BY started_at_ms / 3600000, COALESCE(caller, ''), COALESCE(project, ''), COALESCE(group_name, ''), COALESCE(model, '')",
    "INSERT INTO usage_hourly_latency (hour, latency_bucket, requests) \
     SELECT started_at_ms / 3600000, latency_bucket, COUNT(*) FROM usage_records \
     GROUP BY started_at_ms / 3600000, latency_bucket",
];

/// Whether the rollups are empty while records exist (a rebuild is due).
pub(super) const NEEDS_REBUILD: &str = "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM usage_records) \
     AND NOT EXISTS (SELECT 1 FROM usage_hourly) THEN 1 ELSE 0 END AS BIGINT)";

/// Adds rows to the sums (upsert head; values and the conflict clause follow).
pub(super) const UPSERT_HOURLY: &str = "INSERT INTO usage_hourly (hour, caller, project, group_name, model, requests, errors, input_tokens, output_tokens, cost_usd) ";
/// The sums' conflict clause.
pub(super) const ON_CONFLICT_HOURLY: &str = " ON CONFLICT (hour, caller, project, group_name, model) DO UPDATE SET \
     requests = usage_hourly.requests + excluded.requests, errors = usage_hourly.errors + excluded.errors, \
     input_tokens = usage_hourly.input_tokens + excluded.input_tokens, \
     output_tokens = usage_hourly.output_tokens + excluded.output_tokens, \
     cost_usd = usage_hourly.cost_usd + excluded.cost_usd";
/// Adds rows to the histogram (upsert head).
pub(super) const UPSERT_LATENCY: &str =
    "INSERT INTO usage_hourly_latency (hour, latency_bucket, requests) ";
/// The histogram's conflict clause.
pub(super) const ON_CONFLICT_LATENCY: &str = " ON CONFLICT (hour, latency_bucket) DO UPDATE SET \
     requests = usage_hourly_latency.requests + excluded.requests";

/// Rows per upsert statement.
pub(super) const UPSERT_CHUNK: usize = 100;

/// Sums of one rollup key.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    /// Requests.
    pub requests: i64,
    /// Failed requests.
    pub errors: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Completion tokens.
    pub output_tokens: i64,
    /// Cost, USD.
    pub cost_usd: f64,
}

impl Sums {
    /// Adds `o` to these sums.
    pub fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd += o.cost_usd;
    }
}

/// What the rollups hold for a range of hours, aggregated by the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Sums per time bucket (hours since the epoch, or days).
    pub series: Vec<(i64, Sums)>,
    /// Latency histogram per time bucket: (time bucket, latency bucket, requests).
    pub latency: Vec<(i64, i32, i64)>,
    /// Sums per value of each key: (key, value, sums); keys `caller`, `project`, `group`,
    /// `model`.
    pub tops: Vec<(String, String, Sums)>,
}

/// The keys [`Rollup::tops`] are summed by, in the order [`tops`] takes their values.
pub const TOP_KEYS: [&str; 4] = ["caller", "project", "group", "model"];

/// The sums per value of each key, from sums per (caller, project, group, model).
pub(super) fn tops(combos: Vec<([String; 4], Sums)>) -> Vec<(String, String, Sums)> {
    let mut per: BTreeMap<(usize, String), Sums> = BTreeMap::new();
    for (values, s) in combos {
        for (i, v) in values.into_iter().enumerate() {
            per.entry((i, v)).or_default().add(&s);
        }
    }
    per.into_iter()
        .map(|((i, v), s)| (TOP_KEYS[i].to_string(), v, s))
        .collect()
}

/// The sums' columns as one aggregate select list (cast: PostgreSQL sums BIGINT as NUMERIC).
pub(super) const SUMS: &str = "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors, \
     CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
     SUM(cost_usd) AS cost_usd";

/// The rollup increments of newly stored records: sums keyed by (hour, caller, project,
/// group, model) and histogram counts keyed by (hour, bucket).
pub(super) type Deltas = (
    HashMap<(i64, String, String, String, String), Sums>,
    HashMap<(i64, i32), i64>,
);

/// The increments `stored` records make.
pub(super) fn deltas<'a>(stored: impl Iterator<Item = &'a UsageRecord>) -> Deltas {
    let (mut sums, mut hist): Deltas = Default::default();
    for r in stored {
        let hour = r.started_at_ms.div_euclid(3_600_000);
        let s = sums
            .entry((
                hour,
                r.caller.clone().unwrap_or_default(),
                r.project.clone().unwrap_or_default(),
                r.group.clone().unwrap_or_default(),
                r.model.clone().unwrap_or_default(),
            ))
            .or_default();
        s.add(&Sums {
            requests: 1,
            errors: i64::from(r.status == "error"),
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
        });
        *hist
            .entry((hour, latency_bucket(r.latency_ms)))
            .or_default() += 1;
    }
    (sums, hist)
}

impl Rollup {
    /// The latency histogram of each time bucket.
    pub fn histograms(&self) -> BTreeMap<i64, BTreeMap<i32, i64>> {
        let mut out: BTreeMap<i64, BTreeMap<i32, i64>> = BTreeMap::new();
        for (t, b, n) in &self.latency {
            *out.entry(*t).or_default().entry(*b).or_default() += n;
        }
        out
    }

    /// The sums per value of `key` (`caller`, `project`, `group`, `model`).
    pub fn top(&self, key: &str) -> Vec<(String, Sums)> {
        self.tops
            .iter()
            .filter(|(k, ..)| k == key)
            .map(|(_, v, s)| (v.clone(), *s))
            .collect()
    }
}
