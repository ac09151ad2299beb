//! Usage records, reports, exports, retention and metrics, on SQLite and PostgreSQL (the same
//! tests run against both backends).

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::{Script, ScriptUsage};
use router::usage::store::UsageStore;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
[providers.fake]
kind = "openai"
base_url = "FAKE"
[groups.g]
strategy = "priority"
[[groups.g.targets]]
provider = "fake"
model = "first"
price = { input = 2.0, cached_input = 0.5, output = 10.0 }
[[groups.g.targets]]
provider = "fake"
model = "second"
price = { input = 1.0, output = 4.0 }
[[callers]]
name = "alice"
project = "payments"
team = "commerce"
groups = ["g"]
token = "alice-token"
[[callers]]
name = "bob"
project = "search"
groups = ["g"]
token = "bob-token"
[[callers]]
name = "metrics"
roles = ["metrics-admin"]
token = "metrics-token"
[[callers]]
name = "reports"
roles = ["report-admin"]
token = "reports-token"
[[callers]]
name = "root"
roles = ["admin"]
token = "admin-token"
"#;

async fn ask(h: &Harness, token: &str, request_id: &str, ua: &str) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-request-id", request_id),
            ("user-agent", ua),
        ],
        Bytes::from(
            json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ),
    )
    .await
}

async fn get(h: &Harness, path: &str, token: Option<&str>) -> common::Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    send("GET", &h.url(path), &headers, Bytes::new()).await
}

fn store(h: &Harness) -> &dyn UsageStore {
    h.store.as_deref().unwrap()
}

async fn records_are_complete_and_priced(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    h.fake.enqueue(Script {
        status: Some(503),
        ..Script::default()
    });
    h.fake.enqueue(Script {
        usage: Some(ScriptUsage {
            input: 1000,
            output: 200,
            cached: 400,
            reasoning: 50,
        }),
        ..Script::default()
    });
    let r = ask(&h, "alice-token", "req-usage-1", "OpenAI/Python 3.54.0").await;
    assert_eq!(r.status, 200);
    assert!(h.written(1).await);
    let recs = store(&h).by_request_id("req-usage-1").await.unwrap();
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(
        (
            rec.caller.as_deref(),
            rec.project.as_deref(),
            rec.team.as_deref()
        ),
        (Some("alice"), Some("payments"), Some("commerce"))
    );
    assert_eq!(
        (
            rec.client.as_str(),
            rec.surface.as_str(),
            rec.group.as_deref()
        ),
        ("openai-python", "openai_chat", Some("g"))
    );
    assert_eq!(
        (rec.provider.as_deref(), rec.model.as_deref()),
        (Some("fake"), Some("second"))
    );
    assert_eq!(
        (
            rec.status.as_str(),
            rec.http_status,
            rec.attempts,
            rec.fallback
        ),
        ("ok", 200, 2, true)
    );
    assert_eq!(
        (
            rec.input_tokens,
            rec.cached_tokens,
            rec.output_tokens,
            rec.reasoning_tokens
        ),
        (1000, 400, 200, 50)
    );
    // "second" has no cached price: cached input at the input price.
    assert!(
        (rec.cost_usd - (600.0 * 1.0 + 400.0 * 1.0 + 200.0 * 4.0) / 1e6).abs() < 1e-12,
        "{}",
        rec.cost_usd
    );
    let attempts: Value = serde_json::from_str(&rec.attempts_json).unwrap();
    assert_eq!(attempts[0]["outcome"], "upstream_5xx");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[1]["outcome"], "ok");
    assert!(rec.latency_ms > 0.0);
    let text = serde_json::to_string(rec).unwrap();
    assert!(
        !text.contains("hi\"") && !text.contains("alice-token"),
        "no content or token in records"
    );
}

async fn reports_group_and_filter(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    for i in 0..6 {
        h.fake.enqueue(Script {
            usage: Some(ScriptUsage {
                input: 100,
                output: 10,
                ..ScriptUsage::default()
            }),
            ..Script::default()
        });
        let token = if i < 4 { "alice-token" } else { "bob-token" };
        assert_eq!(ask(&h, token, &format!("r{i}"), "curl/8").await.status, 200);
    }
    h.fake.enqueue(Script {
        status: Some(400),
        error: Some("bad".into()),
        ..Script::default()
    });
    assert_eq!(ask(&h, "bob-token", "r-bad", "curl/8").await.status, 400);
    assert!(h.written(7).await);
    let r = get(
        &h,
        "/admin/reports/usage?group_by=caller,group,day",
        Some("reports-token"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let alice = rows.iter().find(|r| r["key"]["caller"] == "alice").unwrap();
    assert_eq!(
        (
            alice["requests"].as_i64(),
            alice["errors"].as_i64(),
            alice["input_tokens"].as_i64()
        ),
        (Some(4), Some(0), Some(400))
    );
    assert!(
        (alice["cost_usd"].as_f64().unwrap() - 4.0 * (100.0 * 2.0 + 10.0 * 10.0) / 1e6).abs()
            < 1e-12
    );
    assert!(
        alice["key"]["day"].as_str().unwrap().starts_with("20"),
        "{alice}"
    );
    assert!(alice["latency_ms_p50"].as_f64().unwrap() > 0.0);
    assert!(alice["latency_ms_p99"].as_f64().unwrap() >= alice["latency_ms_p50"].as_f64().unwrap());
    assert!(alice["ttft_ms_p50"].as_f64().is_some());
    let bob = rows.iter().find(|r| r["key"]["caller"] == "bob").unwrap();
    assert_eq!(
        (bob["requests"].as_i64(), bob["errors"].as_i64()),
        (Some(3), Some(1))
    );
    let csv = get(
        &h,
        "/admin/reports/usage?group_by=caller&format=csv",
        Some("admin-token"),
    )
    .await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    assert!(
        lines[0].starts_with("caller,requests,errors,fallbacks,"),
        "{}",
        lines[0]
    );
    assert!(
        lines.iter().any(|l| l.starts_with("alice,4,0,0,400,")),
        "{lines:?}"
    );
    let bad = get(
        &h,
        "/admin/reports/usage?group_by=colour",
        Some("admin-token"),
    )
    .await;
    assert_eq!(bad.status, 400);
    // A caller sees only its own usage.
    let own = get(&h, "/v1/router/usage?group_by=group", Some("bob-token")).await;
    assert_eq!(own.status, 200, "{}", own.text());
    let rows = own.json()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["requests"], 3);
    assert_eq!(
        get(&h, "/v1/router/usage?group_by=caller", Some("bob-token"))
            .await
            .status,
        400
    );
    // One request with its attempts.
    let one = get(&h, "/admin/requests/r-bad", Some("reports-token")).await;
    assert_eq!(one.status, 200);
    let rec = &one.json()["records"][0];
    assert_eq!(
        (rec["http_status"].as_i64(), rec["error_kind"].as_str()),
        (Some(400), Some("upstream_4xx"))
    );
    assert_eq!(rec["attempts_detail"][0]["status"], 400);
    assert_eq!(
        get(&h, "/admin/requests/nope", Some("reports-token"))
            .await
            .status,
        404
    );
}

async fn exports_stream_every_record(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    for i in 0..25 {
        assert_eq!(
            ask(&h, "alice-token", &format!("e{i}"), "curl/8")
                .await
                .status,
            200
        );
    }
    assert!(h.written(25).await);
    let jsonl = get(&h, "/admin/exports/usage", Some("reports-token")).await;
    assert_eq!(jsonl.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = jsonl
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 25);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["started_at_ms"].as_i64() <= w[1]["started_at_ms"].as_i64())
    );
    let csv = get(&h, "/admin/exports/usage?format=csv", Some("admin-token")).await;
    assert_eq!(csv.text().lines().count(), 26);
    assert!(
        csv.text()
            .starts_with("record_id,request_id,parent_id,started_at_ms,caller,")
    );
    let empty = get(
        &h,
        "/admin/exports/usage?from=2001-01-01&to=2001-01-02",
        Some("admin-token"),
    )
    .await;
    assert_eq!(empty.text(), "");
}

async fn role_matrix(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    assert_eq!(ask(&h, "alice-token", "x", "curl/8").await.status, 200);
    assert!(h.written(1).await);
    let admin_paths = [
        "/admin/reports/usage",
        "/admin/requests/x",
        "/admin/exports/usage",
    ];
    for path in admin_paths {
        assert_eq!(get(&h, path, None).await.status, 401, "{path}");
        assert_eq!(
            get(&h, path, Some("alice-token")).await.status,
            403,
            "{path}"
        );
        assert_eq!(
            get(&h, path, Some("metrics-token")).await.status,
            403,
            "{path}"
        );
        assert_eq!(
            get(&h, path, Some("reports-token")).await.status,
            200,
            "{path}"
        );
        assert_eq!(
            get(&h, path, Some("admin-token")).await.status,
            200,
            "{path}"
        );
    }
    assert_eq!(get(&h, "/metrics", None).await.status, 401);
    assert_eq!(get(&h, "/metrics", Some("alice-token")).await.status, 403);
    assert_eq!(get(&h, "/metrics", Some("reports-token")).await.status, 403);
    assert_eq!(get(&h, "/metrics", Some("metrics-token")).await.status, 200);
    assert_eq!(get(&h, "/metrics", Some("admin-token")).await.status, 200);
    assert_eq!(get(&h, "/v1/router/usage", None).await.status, 401);
    assert_eq!(
        get(&h, "/v1/router/usage", Some("metrics-token"))
            .await
            .status,
        403
    );
}

async fn spool_replays_exactly_once(url: String, hide: &str, show: &str) {
    let h = Harness::with_store(CONFIG, &url).await;
    assert_eq!(ask(&h, "alice-token", "before", "curl/8").await.status, 200);
    assert!(h.written(1).await);
    // Take the store away (the table disappears), serve while it is down, bring it back.
    sql(&url, hide).await;
    for i in 0..20 {
        assert_eq!(
            ask(&h, "alice-token", &format!("down-{i}"), "curl/8")
                .await
                .status,
            200
        );
    }
    let w = h.writer.clone().unwrap();
    assert!(
        common::eventually(|| w
            .stats
            .spool_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0)
        .await,
        "records went to the spool"
    );
    let ready = get(&h, "/readyz", None).await;
    assert_eq!(ready.status, 200, "the spool has room: still ready");
    sql(&url, show).await;
    assert!(h.written(21).await, "the spool was replayed");
    assert!(
        common::eventually(|| w
            .stats
            .spool_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0)
        .await
    );
    let export = get(&h, "/admin/exports/usage", Some("admin-token")).await;
    let ids: Vec<String> = export
        .text()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 21, "every record exactly once: {ids:?}");
    for i in 0..20 {
        assert_eq!(
            ids.iter().filter(|id| **id == format!("down-{i}")).count(),
            1
        );
    }
    assert_eq!(
        w.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// Runs one statement on the test database, outside the router.
async fn sql(url: &str, stmt: &str) {
    use sqlx::Connection;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(stmt.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let (base, schema) = url.split_once("?schema=").unwrap();
        let mut c = sqlx::PgConnection::connect(base).await.unwrap();
        let stmt = stmt
            .replace("usage_records", &format!("{schema}.usage_records"))
            .replace("usage_hourly", &format!("{schema}.usage_hourly"))
            .replace(&format!("TO {schema}.usage_records"), "TO usage_records");
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

async fn purge_removes_old_records(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    assert_eq!(ask(&h, "alice-token", "fresh", "curl/8").await.status, 200);
    assert!(h.written(1).await);
    let mut old = store(&h).by_request_id("fresh").await.unwrap().remove(0);
    for i in 0..25 {
        old.record_id = format!("old-{i}");
        old.request_id = format!("old-{i}");
        old.started_at_ms = 86_400_000 * (100 + i);
        store(&h).insert(std::slice::from_ref(&old)).await.unwrap();
    }
    let n = router::usage::retention::purge(store(&h), router::usage::retention::cutoff_ms(30))
        .await
        .unwrap();
    assert_eq!(n, 25);
    assert_eq!(store(&h).by_request_id("fresh").await.unwrap().len(), 1);
    assert!(store(&h).by_request_id("old-3").await.unwrap().is_empty());
}

/// Issue 18: the hourly rollups the console's overview reads count each stored record once (a
/// replayed batch adds only what was new), leave with their records at purge, and are rebuilt
/// from the records when missing (a store from before them, or a restore).
async fn rollups_count_each_record_once_and_follow_purge_and_rebuild(url: String) {
    let store = router::usage::store::open(&url).unwrap();
    store.migrate().await.unwrap();
    let hour = router::time::now_ms() / 3_600_000;
    let record = |i: usize, caller: &str, error: bool, at: i64| {
        let mut r = router::usage::UsageRecord::from_outcome(
            &router::outcome::RequestOutcome {
                request_id: format!("roll-{i}"),
                parent_id: None,
                started_at: std::time::UNIX_EPOCH + std::time::Duration::from_millis(at as u64),
                caller: Some(caller.into()),
                project: Some("proj".into()),
                team: None,
                environment: None,
                surface: "openai_chat",
                client: "curl",
                group: Some("g".into()),
                stream: false,
                http_status: if error { 502 } else { 200 },
                error_kind: error.then_some("upstream_5xx"),
                attempts: Vec::new(),
                served_by: None,
                usage: None,
                latency: std::time::Duration::from_millis(10 * (i as u64 + 1)),
                ttft: None,
                affinity_hit: None,
                warnings: Vec::new(),
                overhead: None,
                annotations: Vec::new(),
                quota: None,
                config_hash: "h".into(),
                capture_policy: None,
                rule: None,
                trace: None,
            },
            0.5,
        );
        r.input_tokens = 100;
        r.output_tokens = 10;
        r
    };
    let at = hour * 3_600_000 + 1000;
    let rs: Vec<_> = (0..5)
        .map(|i| record(i, if i < 3 { "a" } else { "b" }, i == 4, at))
        .collect();
    store.insert(&rs[..3]).await.unwrap();
    store.insert(&rs[1..]).await.unwrap(); // 2 replayed, 2 new
    let old = record(9, "a", false, 86_400_000 * 100);
    store.insert(std::slice::from_ref(&old)).await.unwrap();
    let check = |r: &router::usage::store::rollup::Rollup| {
        let sums = r
            .series
            .iter()
            .find(|(t, _)| *t == hour)
            .map(|(_, s)| *s)
            .unwrap();
        let hist = &r.histograms()[&hour];
        assert_eq!(sums.requests, 5, "{r:?}");
        assert_eq!(sums.errors, 1);
        assert_eq!((sums.input_tokens, sums.output_tokens), (500, 50));
        assert!((sums.cost_usd - 2.5).abs() < 1e-9);
        assert_eq!(hist.values().sum::<i64>(), 5);
        let by_caller: std::collections::HashMap<String, _> = r.top("caller").into_iter().collect();
        assert_eq!(by_caller["a"].requests, 3);
        assert_eq!(by_caller["b"].requests, 2);
        assert_eq!(r.top("group"), [("g".to_string(), sums)]);
    };
    let now = store.rollup(hour - 1, hour + 1, false).await.unwrap();
    check(&now);
    assert_eq!(
        store.rollup(0, hour - 1, false).await.unwrap().series.len(),
        1,
        "the old record's hour"
    );
    // Per day: the same sums in the day's bucket.
    let days = store.rollup(hour - 1, hour + 1, true).await.unwrap();
    assert_eq!(days.series.iter().map(|(_, s)| s.requests).sum::<i64>(), 5);
    // Rebuilt from the records when the rollups are gone.
    sql(&url, "DELETE FROM usage_hourly").await;
    sql(&url, "DELETE FROM usage_hourly_latency").await;
    assert!(
        store
            .rollup(hour - 1, hour + 1, false)
            .await
            .unwrap()
            .series
            .is_empty()
    );
    store.migrate().await.unwrap();
    check(&store.rollup(hour - 1, hour + 1, false).await.unwrap());
    // Purged with their records.
    let n =
        router::usage::retention::purge(store.as_ref(), router::usage::retention::cutoff_ms(30))
            .await
            .unwrap();
    assert_eq!(n, 1);
    assert!(
        store
            .rollup(0, hour - 1, false)
            .await
            .unwrap()
            .series
            .is_empty()
    );
    check(&store.rollup(hour - 1, hour + 1, false).await.unwrap());
}

async fn metrics_have_no_tenant_labels(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    h.fake.enqueue(Script {
        usage: Some(ScriptUsage {
            input: 10,
            output: 5,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    });
    assert_eq!(
        ask(&h, "alice-token", "metric-req-123", "curl/8")
            .await
            .status,
        200
    );
    // Group names the config does not declare are one `unknown` series, not one per name.
    let stray = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", "Bearer alice-token")],
        Bytes::from(
            json!({"model": "made-up-group-42", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(stray.status, 404);
    assert!(h.written(2).await);
    let text = get(&h, "/metrics", Some("metrics-token")).await.text();
    assert!(!text.contains("made-up-group-42"), "{text}");
    assert!(text.contains("group=\"unknown\""), "{text}");
    for want in [
        "smart_router_requests_total{",
        "smart_router_request_duration_seconds_bucket",
        "smart_router_tokens_total{",
        "smart_router_attempts_total{",
        "smart_router_in_flight_requests",
        "smart_router_usage_queue_depth",
        "smart_router_usage_spool_bytes",
        "smart_router_target_cooling{",
        "smart_router_cost_usd_total{",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    assert!(text.contains("group=\"g\"") && text.contains("model=\"first\""));
    for forbidden in [
        "alice",
        "payments",
        "commerce",
        "caller",
        "project",
        "team",
        "metric-req-123",
        "alice-token",
        "request_id",
    ] {
        assert!(!text.contains(forbidden), "{forbidden} appears in /metrics");
    }
}

macro_rules! both_backends {
    ($($name:ident $(($($arg:expr),*))?),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::common::sqlite_url() $($(, $arg.0)*)?).await }) *
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::common::postgres_url() $($(, $arg.1)*)?).await }) *
        }
    };
}

/// A stored usage record's JSON (as the spool holds it), with `id` as record and request id.
fn record_json(id: &str) -> String {
    json!({"record_id": id, "request_id": id, "parent_id": null, "started_at_ms": 1_700_000_000_000i64,
           "caller": "alice", "project": null, "team": null, "environment": null, "client": "curl",
           "surface": "openai_chat", "group": "g", "provider": "fake", "model": "first",
           "status": "ok", "http_status": 200, "error_kind": null, "attempts": 1,
           "attempts_json": "[]", "fallback": false, "stream": false, "latency_ms": 1.0,
           "ttft_ms": null, "input_tokens": 1, "cached_tokens": 0, "cache_write_tokens": 0,
           "output_tokens": 1, "reasoning_tokens": 0, "cost_usd": 0.0, "warnings": "[]",
           "affinity_hit": null})
    .to_string()
}

/// A full batch is written as soon as it is queued, not at the flush interval (the writer is
/// woken by the submitter); a partial one waits for the interval, or for shutdown.
async fn a_full_batch_is_written_at_once(url: String) {
    let store = router::usage::store::open(&url).unwrap();
    store.migrate().await.unwrap();
    let spool = std::env::temp_dir().join(format!("sr-spool-{}", common::uuid_like()));
    let writer = router::usage::Writer::spawn(
        store.clone(),
        router::config::WriterConfig {
            batch_size: 5,
            flush_interval: std::time::Duration::from_secs(60),
            queue_capacity: 100,
            spool_path: spool.clone(),
            spool_max_bytes: 1 << 20,
            retry_interval: std::time::Duration::from_secs(60),
        },
    );
    let submit = |id: String| {
        let r: router::usage::UsageRecord = serde_json::from_str(&record_json(&id)).unwrap();
        assert!(writer.submit(r));
    };
    // Let the writer settle into its wait (an interval's first tick fires at once).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for i in 0..7 {
        submit(format!("batch-{i}"));
    }
    let written = || {
        writer
            .stats
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(
        common::eventually(|| written() == 5).await,
        "the full batch is written long before the 60 s interval"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(written(), 5, "the two left wait for the interval");
    writer.shutdown().await;
    assert_eq!(written(), 7, "shutdown writes the rest");
    assert_eq!(store.by_request_id("batch-6").await.unwrap().len(), 1);
    let _ = std::fs::remove_file(&spool);
}

/// Issue 12: spool replay dropped undecodable lines without counting them. They are now counted
/// (`smart_router_usage_spool_rejected_lines`) and kept aside in `SPOOL.rejected`; the good
/// records around them are stored.
async fn issue_12_unreadable_spool_lines_are_counted_and_kept(url: String) {
    let store = router::usage::store::open(&url).unwrap();
    store.migrate().await.unwrap();
    let spool = std::env::temp_dir().join(format!("sr-spool-{}", common::uuid_like()));
    let text = format!(
        "{}\n{{\"truncated\": \n{}\nnot json at all\n",
        record_json("spool-a"),
        record_json("spool-b")
    );
    std::fs::write(&spool, text).unwrap();
    let writer = router::usage::Writer::spawn(
        store.clone(),
        router::config::WriterConfig {
            batch_size: 10,
            flush_interval: std::time::Duration::from_millis(20),
            queue_capacity: 100,
            spool_path: spool.clone(),
            spool_max_bytes: 1 << 20,
            retry_interval: std::time::Duration::from_millis(50),
        },
    );
    let stats = writer.stats.clone();
    assert!(
        common::eventually(|| stats.written.load(std::sync::atomic::Ordering::Relaxed) == 2).await,
        "both good records stored"
    );
    assert_eq!(
        stats
            .spool_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let mut rejected = spool.clone().into_os_string();
    rejected.push(".rejected");
    let kept = std::fs::read_to_string(&rejected).unwrap();
    assert_eq!(kept, "{\"truncated\": \nnot json at all\n");
    // The spool is cut only after every record in it is stored, so it empties a moment later.
    assert!(
        common::eventually(|| std::fs::metadata(&spool).is_ok_and(|m| m.len() == 0)).await,
        "spool emptied"
    );
    writer.shutdown().await;
    assert_eq!(store.by_request_id("spool-b").await.unwrap().len(), 1);
    let _ = std::fs::remove_file(&spool);
    let _ = std::fs::remove_file(&rejected);
}

/// A table made before `quota`, `annotations` and `config_hash` existed gains them on migrate,
/// keeps its rows, and takes records with them.
async fn older_tables_gain_the_new_columns(url: String) {
    let store = router::usage::store::open(&url).unwrap();
    store.migrate().await.unwrap();
    // Make it look like the first release's table: drop the two later columns.
    sql(&url, "ALTER TABLE usage_records DROP COLUMN quota").await;
    sql(&url, "ALTER TABLE usage_records DROP COLUMN annotations").await;
    sql(&url, "ALTER TABLE usage_records DROP COLUMN config_hash").await;
    let store = router::usage::store::open(&url).unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let h = Harness::with_store(
        &CONFIG.replace(
            "[[callers]]\nname = \"alice\"",
            "[[quotas]]\nname = \"trial\"\nrequests_per_minute = 1\nmode = \"shadow\"\n[[callers]]\nname = \"alice\"",
        ),
        &url,
    )
    .await;
    for id in ["mig-1", "mig-2"] {
        assert_eq!(ask(&h, "alice-token", id, "curl/8").await.status, 200);
    }
    assert!(h.written(2).await);
    let r = store.by_request_id("mig-2").await.unwrap();
    assert_eq!(r[0].quota.as_deref(), Some("trial"), "{r:?}");
    assert!(
        r[0].annotations.contains("would_reject"),
        "{}",
        r[0].annotations
    );
    assert_eq!(
        r[0].config_hash, h.state.config.hash,
        "the record names its config"
    );
    assert_eq!(r[0].config_hash.len(), 64);
}

both_backends!(
    a_full_batch_is_written_at_once,
    older_tables_gain_the_new_columns,
    issue_12_unreadable_spool_lines_are_counted_and_kept,
    records_are_complete_and_priced,
    reports_group_and_filter,
    exports_stream_every_record,
    role_matrix,
    spool_replays_exactly_once(
        (
            "ALTER TABLE usage_records RENAME TO usage_records_away",
            "ALTER TABLE usage_records RENAME TO usage_records_away"
        ),
        (
            "ALTER TABLE usage_records_away RENAME TO usage_records",
            "ALTER TABLE usage_records_away RENAME TO usage_records"
        )
    ),
    purge_removes_old_records,
    metrics_have_no_tenant_labels,
    rollups_count_each_record_once_and_follow_purge_and_rebuild,
);

/// What only PostgreSQL has: other processes migrating at the same time, and TLS.
mod postgres_only {
    use super::common::postgres_url;
    use router::usage::store::{self, StoreError};
    use sqlx::Connection;

    /// Replicas starting together on a fresh database all migrate (without the advisory lock,
    /// PostgreSQL fails all but one `CREATE TABLE IF NOT EXISTS` with a unique violation).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_migrating_at_once_all_succeed() {
        for _ in 0..3 {
            let url = postgres_url();
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move { store::open(&url).unwrap().migrate().await })
                })
                .collect();
            for t in tasks {
                t.await
                    .unwrap()
                    .expect("every replica's migration succeeds");
            }
        }
    }

    /// Whether the store's connection (found by its application_name) is encrypted, as the
    /// server sees it.
    async fn encrypted(app: &str) -> Vec<bool> {
        let base = postgres_url();
        let base = base.split_once('?').unwrap().0;
        let mut c = sqlx::PgConnection::connect(base).await.unwrap();
        sqlx::query_scalar(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
        )
        .bind(app)
        .fetch_all(&mut c)
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sslmode_require_and_prefer_encrypt_the_connection() {
        for mode in ["require", "prefer"] {
            let app = format!("sr-tls-{mode}-{}", std::process::id());
            let s = store::open(&format!(
                "{}&sslmode={mode}&application_name={app}",
                postgres_url()
            ))
            .unwrap();
            s.migrate().await.unwrap();
            s.ping().await.unwrap();
            let seen = encrypted(&app).await;
            assert!(
                !seen.is_empty() && seen.iter().all(|&tls| tls),
                "sslmode={mode}: {seen:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_untrusted_server_certificate_is_refused_without_echoing_the_password() {
        // The test server's certificate is Debian's self-signed snakeoil: not a trusted root.
        let url = postgres_url().replace("postgres@", "postgres:hunter2-pw@");
        let s = store::open(&format!("{url}&sslmode=verify-full")).unwrap();
        let e = s.migrate().await.unwrap_err();
        let (shown, debug) = (e.to_string(), format!("{e:?}"));
        assert!(
            !shown.contains("hunter2") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(
            shown.to_lowercase().contains("certificate"),
            "the error says what failed: {shown}"
        );
    }

    #[test]
    fn a_malformed_url_is_refused_without_echoing_the_password() {
        for url in [
            "postgres://u:hunter2-pw@127.0.0.1:notaport/db",
            "postgres://u:hunter2-pw@127.0.0.1:5432/db?sslmode=sometimes",
            "postgres://u:hunter2-pw@127.0.0.1:5432/db?schema=bad;name",
        ] {
            let e = store::open(url).unwrap_err();
            assert!(matches!(e, StoreError::Url { .. }), "{e:?}");
            let (shown, debug) = (e.to_string(), format!("{e:?}"));
            assert!(
                !shown.contains("hunter2") && !debug.contains("hunter2"),
                "{debug}"
            );
        }
    }
}
