//! Usage store benchmark: writer throughput, a grouped report and an export over N records.
//!
//! `cargo run --release -p router --example store_bench -- URL [RECORDS]`
//! (URL: `sqlite:///tmp/bench.db` or `postgres://postgres@127.0.0.1:5432/test?schema=bench`).
//! Prints one JSON object with the figures.

use router::config::WriterConfig;
use router::usage::store::{self, Dimension, ReportQuery};
use router::usage::{UsageRecord, Writer};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Peak resident memory so far, kB (Linux).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn record(i: u64, base_ms: i64) -> UsageRecord {
    let callers = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    let groups = ["fast", "coder", "vision"];
    UsageRecord {
        record_id: format!("bench-{i:012}"),
        request_id: format!("req-{i}"),
        parent_id: None,
        started_at_ms: base_ms + (i as i64 % (30 * 86_400)) * 1000,
        caller: Some(callers[(i % 8) as usize].into()),
        project: Some("proj".into()),
        team: Some("team".into()),
        environment: Some("prod".into()),
        client: "codex".into(),
        surface: "openai_responses".into(),
        group: Some(groups[(i % 3) as usize].into()),
        provider: Some("openai".into()),
        model: Some("gpt-x".into()),
        status: if i % 50 == 0 { "error" } else { "ok" }.into(),
        http_status: if i % 50 == 0 { 502 } else { 200 },
        error_kind: (i % 50 == 0).then(|| "upstream_5xx".into()),
        attempts: 1,
        attempts_json: r#"[{"provider":"openai","model":"gpt-x","outcome":"ok","status":200,"latency_ms":120.5}]"#.into(),
        fallback: i % 20 == 0,
        stream: true,
        latency_ms: 50.0 + (i % 997) as f64,
        ttft_ms: Some(20.0 + (i % 313) as f64),
        input_tokens: 1000 + (i % 100) as i64,
        cached_tokens: 500,
        cache_write_tokens: 0,
        output_tokens: 200,
        reasoning_tokens: 20,
        cost_usd: 0.0021,
        warnings: "[]".into(),
        affinity_hit: Some(i % 2 == 0),
        quota: None,
        annotations: "[]".into(),
        config_hash: "bench".into(),
        capture_policy: None,
        rule: None,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: store_bench URL [RECORDS]");
    let n: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("RECORDS is a number"));
    let store = store::open(&url).expect("store opens");
    store.migrate().await.expect("store migrates");
    let spool = std::env::temp_dir().join(format!("store-bench-{}.spool", std::process::id()));
    let writer = Writer::spawn(
        store.clone(),
        WriterConfig {
            batch_size: 1000,
            flush_interval: Duration::from_millis(200),
            queue_capacity: 65_536,
            spool_path: spool.clone(),
            spool_max_bytes: 1 << 30,
            retry_interval: Duration::from_secs(1),
        },
    );
    let base_ms = 1_790_000_000_000;
    let t0 = Instant::now();
    let mut submitted = 0;
    for i in 0..n {
        let mut r = record(i, base_ms);
        r.record_id = format!("{}-{}", r.record_id, std::process::id());
        while !writer.submit(r.clone()) {
            // The queue is full: the bench waits (the router would count a drop instead).
            writer.stats.dropped.fetch_sub(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        submitted += 1;
    }
    while writer.stats.written.load(Ordering::Relaxed) < submitted {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let write_secs = t0.elapsed().as_secs_f64();
    writer.shutdown().await;
    let q = ReportQuery {
        from_ms: 0,
        to_ms: i64::MAX,
        group_by: vec![Dimension::Caller, Dimension::Group, Dimension::Day],
        caller: None,
    };
    let t1 = Instant::now();
    let rows = store::report::run(store.as_ref(), &q)
        .await
        .expect("report runs");
    let report_secs = t1.elapsed().as_secs_f64();
    let rss_before_export = peak_rss_kb();
    let t2 = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let producer = tokio::spawn({
        let store = store.clone();
        async move { store.export(0, i64::MAX, tx).await }
    });
    let mut exported = 0u64;
    let mut bytes = 0usize;
    while let Some(r) = rx.recv().await {
        bytes += router::admin::export_line(&r.expect("row decodes"), false).len();
        exported += 1;
    }
    producer.await.unwrap();
    let export_secs = t2.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "store": url.split('?').next().unwrap_or("").rsplit('@').next(),
            "records": n,
            "write_records_per_sec": (n as f64 / write_secs).round(),
            "write_secs": write_secs,
            "report_group_by": "caller,group,day",
            "report_rows": rows.len(),
            "report_secs": report_secs,
            "export_records": exported,
            "export_mb": bytes as f64 / 1e6,
            "export_secs": export_secs,
            "peak_rss_kb_before_export": rss_before_export,
            "peak_rss_kb_after_export": peak_rss_kb(),
        })
    );
    std::fs::remove_file(spool).ok();
}
