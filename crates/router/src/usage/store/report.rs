//! Usage reports: totals and latency percentiles grouped by any dimensions, as JSON or CSV.
//! Percentiles come from per-record log-scale latency buckets (about 5% wide), so they are
//! computed by the database with GROUP BY even over millions of records.

use super::{StoreError, UsageStore};
use crate::usage::record::bucket_value;
use serde::Serialize;
use std::collections::BTreeMap;

/// A dimension to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    /// The quota or budget that refused the request (or would have, in shadow mode).
    Quota,
    /// The routing rule that decided the request.
    Rule,
    /// Caller name.
    Caller,
    /// Caller's project.
    Project,
    /// Caller's team.
    Team,
    /// Caller's environment.
    Environment,
    /// Client software.
    Client,
    /// Surface (client dialect).
    Surface,
    /// Model group.
    Group,
    /// Provider.
    Provider,
    /// Upstream model.
    Model,
    /// ok / error.
    Status,
    /// UTC day.
    Day,
    /// UTC hour.
    Hour,
}

impl Dimension {
    /// Every dimension with its query spelling.
    pub const ALL: &'static [(&'static str, Dimension)] = &[
        ("caller", Dimension::Caller),
        ("project", Dimension::Project),
        ("team", Dimension::Team),
        ("environment", Dimension::Environment),
        ("client", Dimension::Client),
        ("surface", Dimension::Surface),
        ("group", Dimension::Group),
        ("provider", Dimension::Provider),
        ("model", Dimension::Model),
        ("status", Dimension::Status),
        ("quota", Dimension::Quota),
        ("rule", Dimension::Rule),
        ("day", Dimension::Day),
        ("hour", Dimension::Hour),
    ];

    /// The query spelling.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, d)| *d == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses a comma-separated list (`caller,group,day`).
    pub fn parse_list(s: &str) -> Result<Vec<Dimension>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                Self::ALL
                    .iter()
                    .find(|(n, _)| *n == p)
                    .map(|(_, d)| *d)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                        format!(
                            "unknown group_by dimension {:?} (known: {})",
                            crate::bounds::clip(p, 32),
                            names.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// What to report on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    /// Start, Unix ms (inclusive).
    pub from_ms: i64,
    /// End, Unix ms (exclusive).
    pub to_ms: i64,
    /// Dimensions.
    pub group_by: Vec<Dimension>,
    /// Only this caller's records (self-service).
    pub caller: Option<String>,
}

/// Summable measures of a group of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Measures {
    /// Requests.
    pub requests: i64,
    /// Failed requests.
    pub errors: i64,
    /// Requests served by a fallback.
    pub fallbacks: i64,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Cached prompt tokens.
    pub cached_tokens: i64,
    /// Cache-write tokens.
    pub cache_write_tokens: i64,
    /// Completion tokens.
    pub output_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// Cost, USD.
    pub cost_usd: f64,
}

impl Measures {
    fn add(&mut self, o: &Measures) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.fallbacks += o.fallbacks;
        self.input_tokens += o.input_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.output_tokens += o.output_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cost_usd += o.cost_usd;
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    /// Dimension name -> value.
    pub key: BTreeMap<String, String>,
    /// Totals.
    #[serde(flatten)]
    pub measures: Measures,
    /// Latency percentiles, ms.
    pub latency_ms_p50: f64,
    /// 95th percentile.
    pub latency_ms_p95: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// Time to first byte p50, ms (null without streamed or answered records).
    pub ttft_ms_p50: Option<f64>,
    /// TTFT p95.
    pub ttft_ms_p95: Option<f64>,
}

/// The `q`-quantile (ms) of a latency bucket histogram (bucket -> count).
pub fn quantile(hist: &BTreeMap<i32, i64>, q: f64) -> Option<f64> {
    let total: i64 = hist.values().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (b, n) in hist {
        seen += n;
        if seen >= rank {
            return Some((bucket_value(*b) * 100.0).round() / 100.0);
        }
    }
    hist.keys().last().map(|b| bucket_value(*b))
}

fn label(d: Dimension, raw: &str) -> String {
    let n: i64 = raw.parse().unwrap_or(0);
    match d {
        Dimension::Day => crate::time::format_date(n),
        Dimension::Hour => format!("{}T{:02}:00Z", crate::time::format_date(n / 24), n % 24),
        _ => raw.to_string(),
    }
}

/// One group's totals and its latency and TTFT histograms (bucket -> count).
type Group = (Measures, BTreeMap<i32, i64>, BTreeMap<i32, i64>);

/// Time slices a report is split into, aggregated concurrently and merged (each database
/// aggregates one query on one core).
const SLICES: i64 = 2;

/// Runs a report.
pub async fn run(store: &dyn UsageStore, q: &ReportQuery) -> Result<Vec<ReportRow>, StoreError> {
    let Some((lo, hi)) = store.time_bounds(q.from_ms, q.to_ms).await? else {
        return Ok(Vec::new());
    };
    let step = ((hi - lo) / SLICES).max(1);
    let slices: Vec<ReportQuery> = (0..SLICES)
        .map(|i| ReportQuery {
            from_ms: if i == 0 { lo } else { lo + i * step },
            to_ms: if i == SLICES - 1 {
                hi + 1
            } else {
                lo + (i + 1) * step
            },
            ..q.clone()
        })
        .filter(|s| s.from_ms < s.to_ms)
        .collect();
    let parts = futures_util::future::try_join_all(
        slices
            .iter()
            .flat_map(|s| [store.aggregate(s, false), store.aggregate(s, true)]),
    )
    .await?;
    let (mut lat, mut ttft) = (Vec::new(), Vec::new());
    for (i, part) in parts.into_iter().enumerate() {
        if i % 2 == 0 {
            lat.extend(part)
        } else {
            ttft.extend(part)
        }
    }
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    for (key, b, m) in lat {
        let g = groups.entry(key).or_default();
        g.0.add(&m);
        *g.1.entry(b).or_default() += m.requests;
    }
    for (key, b, m) in ttft {
        *groups.entry(key).or_default().2.entry(b).or_default() += m.requests;
    }
    Ok(groups
        .into_iter()
        .map(|(key, (m, lat, ttft))| ReportRow {
            key: q
                .group_by
                .iter()
                .zip(&key)
                .map(|(d, v)| (d.name().to_string(), label(*d, v)))
                .collect(),
            measures: m,
            latency_ms_p50: quantile(&lat, 0.50).unwrap_or(0.0),
            latency_ms_p95: quantile(&lat, 0.95).unwrap_or(0.0),
            latency_ms_p99: quantile(&lat, 0.99).unwrap_or(0.0),
            ttft_ms_p50: quantile(&ttft, 0.50),
            ttft_ms_p95: quantile(&ttft, 0.95),
        })
        .collect())
}

/// The report as JSON.
pub fn render_json(q: &ReportQuery, rows: &[ReportRow]) -> String {
    serde_json::json!({
        "from_ms": q.from_ms, "to_ms": q.to_ms,
        "group_by": q.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "rows": rows,
    })
    .to_string()
}

/// The report as CSV (header line first).
pub fn render_csv(q: &ReportQuery, rows: &[ReportRow]) -> String {
    let mut out = String::new();
    let dims: Vec<&str> = q.group_by.iter().map(|d| d.name()).collect();
    let measures = "requests,errors,fallbacks,input_tokens,cached_tokens,cache_write_tokens,output_tokens,reasoning_tokens,cost_usd,latency_ms_p50,latency_ms_p95,latency_ms_p99,ttft_ms_p50,ttft_ms_p95";
    out.push_str(
        &dims
            .iter()
            .map(|d| d.to_string())
            .chain(std::iter::once(measures.to_string()))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        for d in &dims {
            out.push_str(&csv_field(r.key.get(*d).map_or("", String::as_str)));
            out.push(',');
        }
        let m = &r.measures;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.6},{},{},{},{},{}\n",
            m.requests,
            m.errors,
            m.fallbacks,
            m.input_tokens,
            m.cached_tokens,
            m.cache_write_tokens,
            m.output_tokens,
            m.reasoning_tokens,
            m.cost_usd,
            r.latency_ms_p50,
            r.latency_ms_p95,
            r.latency_ms_p99,
            opt(r.ttft_ms_p50),
            opt(r.ttft_ms_p95)
        ));
    }
    out
}

/// A CSV field, quoted when needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_quantiles() {
        assert_eq!(label(Dimension::Day, "0"), "1970-01-01");
        assert_eq!(label(Dimension::Hour, "489961"), "2025-11-23T01:00Z");
        let hist: BTreeMap<i32, i64> = [(10, 50), (50, 45), (90, 5)].into();
        assert!((quantile(&hist, 0.5).unwrap() - bucket_value(10)).abs() < 0.01);
        assert!((quantile(&hist, 0.95).unwrap() - bucket_value(50)).abs() < 0.01);
        assert!((quantile(&hist, 0.99).unwrap() - bucket_value(90)).abs() < 0.01);
        assert_eq!(
            Dimension::parse_list("caller, group,day").unwrap(),
            [Dimension::Caller, Dimension::Group, Dimension::Day]
        );
        assert!(
            Dimension::parse_list("colour")
                .unwrap_err()
                .contains("known: caller")
        );
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
