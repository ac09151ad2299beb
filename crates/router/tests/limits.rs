//! Quotas and budgets (issue 13): each scope and limit kind, budgets with prices, shadow mode,
//! rejections in each dialect with their rate-limit headers, the usage-record evidence, the
//! operator and caller views, two replicas sharing Redis, Redis down and back, and a restart
//! with a budget half spent.

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::{Script, ScriptUsage};
use serde_json::{Value, json};
use std::time::Duration;

/// Providers, groups and callers every test here uses; `EXTRA` is replaced by the limits.
const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
[providers.oai]
kind = "openai"
base_url = "FAKE"
[providers.claude]
kind = "anthropic"
base_url = "FAKE_ROOT"
[groups.fast]
[[groups.fast.targets]]
provider = "oai"
model = "m"
price = { input = 10.0, output = 10.0 }
[groups.claude]
[[groups.claude.targets]]
provider = "claude"
model = "c"
price = { input = 10.0, output = 10.0 }
[groups.other]
[[groups.other.targets]]
provider = "oai"
model = "o"
[[callers]]
name = "alice"
project = "payments"
team = "commerce"
environment = "prod"
groups = ["*"]
token = "alice-token"
[[callers]]
name = "bob"
project = "payments"
team = "search"
environment = "dev"
groups = ["*"]
token = "bob-token"
[[callers]]
name = "carol"
groups = ["*"]
token = "carol-token"
[[callers]]
name = "ops"
roles = ["admin"]
token = "admin-token"
EXTRA
"#;

fn config(extra: &str) -> String {
    BASE.replace("EXTRA", extra)
}

async fn chat(h: &Harness, token: &str, group: &str) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {token}"))],
        Bytes::from(
            json!({"model": group, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ),
    )
    .await
}

async fn messages(h: &Harness, token: &str) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/messages"),
        &[("x-api-key", token), ("anthropic-version", "2023-06-01")],
        Bytes::from(
            json!({"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ),
    )
    .await
}

/// Statuses of `n` chat requests from `token`, in order.
async fn statuses(h: &Harness, token: &str, group: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(chat(h, token, group).await.status.as_u16());
    }
    out
}

/// Waits until the current UTC minute has at least `secs` seconds left, so a burst stays in
/// one window.
async fn room_in_this_minute(secs: u64) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let left = 60 - now.as_secs() % 60;
        if left >= secs {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn requests_per_minute_per_caller_in_the_openai_shape_with_headers() {
    room_in_this_minute(10).await;
    let h = Harness::with_config(&config(
        "[[quotas]]\nname = \"per-caller\"\nscope = \"caller\"\nrequests_per_minute = 3\n",
    ))
    .await;
    assert_eq!(
        statuses(&h, "alice-token", "fast", 5).await,
        [200, 200, 200, 429, 429]
    );
    assert_eq!(
        statuses(&h, "bob-token", "fast", 3).await,
        [200, 200, 200],
        "own counter"
    );
    let ok = chat(&h, "carol-token", "fast").await;
    assert_eq!(ok.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(ok.header("x-ratelimit-remaining-requests"), Some("2"));
    let reset = ok.header("x-ratelimit-reset-requests").unwrap();
    assert!(reset.ends_with('s'), "{reset}");
    let r = chat(&h, "alice-token", "fast").await;
    assert_eq!(r.status, 429);
    let e = r.json();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    assert_eq!(e["error"]["type"], "rate_limit_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per-caller")
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(
        h.fake.requests().len(),
        6 + 1,
        "refused requests never went upstream"
    );
}

#[tokio::test]
async fn anthropic_callers_get_rate_limit_error_and_anthropic_headers() {
    room_in_this_minute(10).await;
    let h = Harness::with_config(&config(
        "[[quotas]]\nname = \"tight\"\nrequests_per_minute = 1\ntokens_per_minute = 100000\n",
    ))
    .await;
    let ok = messages(&h, "alice-token").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("anthropic-ratelimit-requests-limit"), Some("1"));
    assert_eq!(
        ok.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    let reset = ok.header("anthropic-ratelimit-requests-reset").unwrap();
    assert!(
        reset.ends_with(":00Z"),
        "the next minute, RFC 3339: {reset}"
    );
    assert_eq!(
        ok.header("anthropic-ratelimit-tokens-limit"),
        Some("100000")
    );
    assert!(ok.header("x-ratelimit-limit-requests").is_none());
    let r = messages(&h, "alice-token").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn scopes_share_counters_as_configured() {
    room_in_this_minute(10).await;
    let h = Harness::with_config(&config(
        r#"
[[quotas]]
name = "per-project"
scope = "project"
requests_per_minute = 2
[[quotas]]
name = "per-team"
scope = "team"
match = { team = "search" }
requests_per_minute = 5
[[quotas]]
name = "everyone"
scope = "global"
groups = ["other"]
requests_per_minute = 1
[[quotas]]
name = "prod"
scope = "environment"
match = { environment = "prod" }
requests_per_minute = 100
"#,
    ))
    .await;
    // alice and bob share project payments: 2 in all.
    assert_eq!(chat(&h, "alice-token", "fast").await.status, 200);
    assert_eq!(chat(&h, "bob-token", "fast").await.status, 200);
    assert_eq!(chat(&h, "alice-token", "fast").await.status, 429);
    assert_eq!(chat(&h, "bob-token", "fast").await.status, 429);
    // carol has no project: project quotas do not count her.
    assert_eq!(
        statuses(&h, "carol-token", "fast", 3).await,
        [200, 200, 200]
    );
    // Global, on group `other` only: one request among everyone (carol: no project quota).
    assert_eq!(chat(&h, "carol-token", "other").await.status, 200);
    let r = chat(&h, "carol-token", "other").await;
    assert_eq!(r.status, 429);
    assert!(r.text().contains("everyone"), "{}", r.text());
}

#[tokio::test]
async fn tokens_are_reserved_from_the_estimate_and_settled_with_usage() {
    room_in_this_minute(10).await;
    let h = Harness::with_config(&config(
        "[limits]\nassumed_output_tokens = 100\n[[quotas]]\nname = \"tpm\"\ntokens_per_minute = 1000\n",
    ))
    .await;
    // A big prompt (~2,000 tokens estimated) reserves the whole minute's tokens: it passes
    // alone, then nothing else fits until the window turns.
    let big = "word ".repeat(1_600);
    let ask = |text: &str| json!({"model": "fast", "max_tokens": 50, "messages": [{"role": "user", "content": text}]});
    h.fake.enqueue(Script {
        usage: Some(ScriptUsage {
            input: 2_000,
            output: 50,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    });
    let post = |h: &Harness, body: Value| {
        let url = h.url("/v1/chat/completions");
        async move {
            send(
                "POST",
                &url,
                &[("authorization", "Bearer alice-token")],
                Bytes::from(body.to_string()),
            )
            .await
        }
    };
    assert_eq!(post(&h, ask(&big)).await.status, 200);
    let r = post(&h, ask("small")).await;
    assert_eq!(r.status, 429);
    assert!(r.text().contains("tokens per minute"), "{}", r.text());
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
    // Small requests whose real usage is below the estimate give the rest back.
    let h2 = Harness::with_config(&config(
        "[limits]\nassumed_output_tokens = 400\n[[quotas]]\nname = \"tpm\"\ntokens_per_minute = 1000\n",
    ))
    .await;
    for _ in 0..6 {
        h2.fake.enqueue(Script {
            usage: Some(ScriptUsage {
                input: 10,
                output: 10,
                ..ScriptUsage::default()
            }),
            ..Script::default()
        });
    }
    let mut ok = 0;
    for _ in 0..6 {
        if post(
            &h2,
            json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .status
            == 200
        {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 6,
        "each reserves ~400 and settles at 20, so six fit in 1,000"
    );
}

#[tokio::test]
async fn concurrency_slots_are_held_until_the_response_ends_or_the_client_leaves() {
    let h = Harness::with_config(&config(
        "[[quotas]]\nname = \"one-at-a-time\"\nconcurrent_requests = 1\n",
    ))
    .await;
    h.fake.enqueue(Script {
        delay_ms: 600,
        ..Script::default()
    });
    let url = h.url("/v1/chat/completions");
    let slow = tokio::spawn(async move {
        send(
            "POST",
            &url,
            &[("authorization", "Bearer alice-token")],
            Bytes::from(
                json!({"model": "fast", "messages": [{"role": "user", "content": "slow"}]})
                    .to_string(),
            ),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = chat(&h, "alice-token", "fast").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        chat(&h, "bob-token", "fast").await.status,
        200,
        "per caller"
    );
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(
        chat(&h, "alice-token", "fast").await.status,
        200,
        "slot released"
    );
    // A client that goes away releases its slot too.
    h.fake.enqueue(Script {
        hang: true,
        ..Script::default()
    });
    let url = h.url("/v1/chat/completions");
    let gone = tokio::spawn(async move {
        send(
            "POST",
            &url,
            &[("authorization", "Bearer alice-token")],
            Bytes::from(
                json!({"model": "fast", "messages": [{"role": "user", "content": "hang"}]})
                    .to_string(),
            ),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(chat(&h, "alice-token", "fast").await.status, 429);
    gone.abort();
    let _ = gone.await;
    assert!(
        common::eventually(|| h.fake.disconnects() >= 1).await,
        "the upstream call was cancelled"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        chat(&h, "alice-token", "fast").await.status,
        200,
        "slot released on disconnect"
    );
}

#[tokio::test]
async fn budgets_are_charged_from_prices_and_refuse_when_spent() {
    let url = common::sqlite_url();
    let cfg = config(
        "[[budgets]]\nname = \"payments-monthly\"\nscope = \"project\"\nmatch = { project = \"payments\" }\nusd = 0.001\nperiod = \"month\"\nwarn_at = 0.5\n",
    );
    let mut h = Harness::with_store(&cfg, &url).await;
    // Each request: 30 input + 20 output tokens at $10/M = $0.0005.
    let spend = || Script {
        usage: Some(ScriptUsage {
            input: 30,
            output: 20,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    };
    h.fake.enqueue(spend());
    let first = chat(&h, "alice-token", "fast").await;
    assert_eq!(first.status, 200);
    assert!(first.header("x-router-budget").is_none());
    h.outcome().await;
    h.fake.enqueue(spend());
    let second = chat(&h, "bob-token", "fast").await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("x-router-budget"),
        Some("payments-monthly=0.500")
    );
    h.outcome().await;
    let r = chat(&h, "alice-token", "fast").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "insufficient_quota");
    assert_eq!(r.json()["error"]["type"], "insufficient_quota");
    assert_eq!(r.header("x-should-retry"), Some("false"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 31 * 86_400);
    let o = h.outcome().await;
    assert_eq!(o.error_kind, Some("budget_exceeded"));
    assert_eq!(o.quota.as_deref(), Some("payments-monthly"));
    // carol is not in the project: not counted.
    assert_eq!(chat(&h, "carol-token", "fast").await.status, 200);
    h.outcome().await;
    // The record says so, and reports group by it.
    assert!(h.written(4).await);
    let rec = send(
        "GET",
        &h.url(&format!("/admin/requests/{}", o.request_id)),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await
    .json();
    assert_eq!(rec["records"][0]["status"], "budget_exceeded");
    assert_eq!(rec["records"][0]["quota"], "payments-monthly");
    let rep = send(
        "GET",
        &h.url("/admin/reports/usage?group_by=quota,status"),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await
    .json();
    let rows = rep["rows"].as_array().unwrap().clone();
    assert!(
        rows.iter()
            .any(|r| r["key"]["quota"] == "payments-monthly"
                && r["key"]["status"] == "budget_exceeded"),
        "{rows:?}"
    );
    // A restart (same store, memory backend): the budget is rebuilt from the records.
    h.shutdown();
    let h2 = Harness::with_store(&cfg, &url).await;
    let r = chat(&h2, "bob-token", "fast").await;
    assert_eq!(r.status, 429, "still spent after a restart: {}", r.text());
    let own = send(
        "GET",
        &h2.url("/v1/router/usage"),
        &[("authorization", "Bearer bob-token")],
        Bytes::new(),
    )
    .await
    .json();
    let b = &own["limits"]["budgets"][0];
    assert_eq!(b["name"], "payments-monthly");
    assert_eq!(b["subjects"][0]["subject"], "payments");
    assert!((b["subjects"][0]["spent_usd"].as_f64().unwrap() - 0.001).abs() < 1e-9);
}

#[tokio::test]
async fn a_half_spent_budget_survives_a_restart() {
    let url = common::sqlite_url();
    let cfg = config(
        "[[budgets]]\nname = \"daily\"\nscope = \"caller\"\nusd = 0.0015\nperiod = \"day\"\n",
    );
    let mut h = Harness::with_store(&cfg, &url).await;
    let spend = || Script {
        usage: Some(ScriptUsage {
            input: 30,
            output: 20,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    };
    h.fake.enqueue(spend());
    assert_eq!(chat(&h, "alice-token", "fast").await.status, 200);
    h.outcome().await;
    assert!(h.written(1).await);
    h.shutdown();
    // Half spent ($0.0005 of $0.0015): two more fit, then it is spent.
    let h2 = Harness::with_store(&cfg, &url).await;
    for _ in 0..2 {
        h2.fake.enqueue(spend());
    }
    assert_eq!(
        statuses(&h2, "alice-token", "fast", 3).await,
        [200, 200, 429]
    );
}

#[tokio::test]
async fn shadow_mode_records_would_reject_and_never_refuses() {
    room_in_this_minute(10).await;
    let url = common::sqlite_url();
    let mut h = Harness::with_store(
        &config("[[quotas]]\nname = \"trial\"\nrequests_per_minute = 1\nmode = \"shadow\"\n"),
        &url,
    )
    .await;
    assert_eq!(
        statuses(&h, "alice-token", "fast", 3).await,
        [200, 200, 200]
    );
    let first = h.outcome().await;
    assert_eq!(first.quota, None);
    let second = h.outcome().await;
    assert_eq!(second.quota.as_deref(), Some("trial"));
    assert_eq!(second.error_kind, None);
    assert!(
        second
            .annotations
            .iter()
            .any(|a| &*a.stage == "trial" && a.note.starts_with("would_reject")),
        "{:?}",
        second.annotations
    );
    let metrics = send(
        "GET",
        &h.url("/metrics"),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await
    .text();
    assert!(
        metrics.contains(
            "smart_router_quota_decisions_total{quota=\"trial\",outcome=\"would_reject\"} 2"
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("quota"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!metrics.contains("alice"), "no caller labels");
}

#[tokio::test]
async fn operators_see_every_limit_and_callers_their_own() {
    room_in_this_minute(10).await;
    let url = common::sqlite_url();
    let h = Harness::with_store(
        &config("[[quotas]]\nname = \"per-caller\"\nrequests_per_minute = 10\n[[quotas]]\nname = \"search-only\"\nscope = \"team\"\nmatch = { team = \"search\" }\nrequests_per_minute = 5\n"),
        &url,
    )
    .await;
    assert_eq!(statuses(&h, "alice-token", "fast", 2).await, [200, 200]);
    let all = send(
        "GET",
        &h.url("/admin/limits"),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await;
    assert_eq!(all.status, 200);
    let v = all.json();
    assert_eq!(v["backend"], "memory");
    let per_caller = &v["quotas"][0];
    let alice = per_caller["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "alice")
        .unwrap();
    assert_eq!(alice["requests_this_minute"], 2);
    assert_eq!(
        send(
            "GET",
            &h.url("/admin/limits"),
            &[("authorization", "Bearer alice-token")],
            Bytes::new()
        )
        .await
        .status,
        403
    );
    let own = send(
        "GET",
        &h.url("/v1/router/usage"),
        &[("authorization", "Bearer alice-token")],
        Bytes::new(),
    )
    .await
    .json();
    let quotas = own["limits"]["quotas"].as_array().unwrap();
    assert_eq!(
        quotas.len(),
        1,
        "search-only does not count alice: {quotas:?}"
    );
    assert_eq!(
        quotas[0]["subjects"].as_array().unwrap().len(),
        1,
        "only herself"
    );
    assert_eq!(quotas[0]["subjects"][0]["subject"], "alice");
}

fn redis_config(prefix: &str, port: u16, extra: &str) -> String {
    config(&format!(
        "[limits]\nbackend = \"redis://127.0.0.1:{port}/0\"\nkey_prefix = \"{prefix}\"\nexpected_replicas = 2\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_admit_at_most_the_limit() {
    room_in_this_minute(20).await;
    let prefix = format!("sr-test-{}", common::uuid_like());
    let cfg = redis_config(
        &prefix,
        6379,
        "[[quotas]]\nname = \"shared\"\nscope = \"global\"\nrequests_per_minute = 100\n",
    );
    let a = Harness::with_config(&cfg).await;
    let b = Harness::with_config(&cfg).await;
    let mut admitted = 0;
    let mut calls = Vec::new();
    for i in 0..1_000 {
        let h = if i % 2 == 0 { &a } else { &b };
        calls.push(chat(h, "carol-token", "fast"));
        if calls.len() == 50 {
            for r in futures_util::future::join_all(calls.drain(..)).await {
                if r.status == 200 {
                    admitted += 1;
                } else {
                    assert_eq!(r.status, 429, "{}", r.text());
                }
            }
        }
    }
    // Leases are granted atomically within the limit: no overshoot at all. Units a replica
    // holds unspent are not used, so a little under the limit is possible.
    assert!(admitted <= 100, "admitted {admitted}");
    assert!(admitted >= 80, "admitted only {admitted}");
}

/// A Redis this test owns, on its own port.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(OwnRedis { child, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn backend_up(h: &Harness) -> String {
    let m = send(
        "GET",
        &h.url("/metrics"),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await
    .text();
    m.lines()
        .find(|l| l.starts_with("smart_router_limits_backend_up "))
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_follows_on_backend_error_and_recovers() {
    room_in_this_minute(15).await;
    // Nothing listens on this port: allow -> a local share of the limit (10 / 2 replicas).
    let dead = free_port();
    let h = Harness::with_config(&redis_config(
        "sr-dead",
        dead,
        "on_backend_error = \"allow\"\nbackend_timeout_ms = 100\n[[quotas]]\nname = \"q\"\nrequests_per_minute = 10\n",
    ))
    .await;
    assert_eq!(
        statuses(&h, "alice-token", "fast", 7).await,
        [200, 200, 200, 200, 200, 429, 429]
    );
    assert_eq!(backend_up(&h).await, "smart_router_limits_backend_up 0");
    let ready = send("GET", &h.url("/readyz"), &[], Bytes::new()).await;
    assert_eq!(
        ready.status, 200,
        "a limits backend outage is not unreadiness"
    );
    // deny -> 503 in the caller's dialect.
    let d = Harness::with_config(&redis_config(
        "sr-dead",
        dead,
        "on_backend_error = \"deny\"\nbackend_timeout_ms = 100\n[[quotas]]\nname = \"q\"\nrequests_per_minute = 10\n",
    ))
    .await;
    let r = chat(&d, "alice-token", "fast").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "limits_unavailable");
    // A Redis of our own, stopped and started again: shared counting resumes by itself.
    let port = free_port();
    let prefix = format!("sr-test-{}", common::uuid_like());
    let redis = OwnRedis::start(port).expect("redis-server runs");
    let h = Harness::with_config(&redis_config(
        &prefix,
        redis.port,
        "backend_timeout_ms = 200\n[[quotas]]\nname = \"q\"\nrequests_per_minute = 1000\n",
    ))
    .await;
    assert_eq!(chat(&h, "alice-token", "fast").await.status, 200);
    assert_eq!(backend_up(&h).await, "smart_router_limits_backend_up 1");
    drop(redis);
    // The router keeps serving on its local share (it leased 100 units at once before).
    let mut served = 0;
    for _ in 0..200 {
        if chat(&h, "alice-token", "fast").await.status == 200 {
            served += 1;
        }
    }
    assert!(served >= 100, "served {served} while Redis was down");
    assert_eq!(backend_up(&h).await, "smart_router_limits_backend_up 0");
    let _redis = OwnRedis::start(port).expect("redis-server runs again");
    let mut up = false;
    for _ in 0..50 {
        let _ = chat(&h, "bob-token", "fast").await;
        if backend_up(&h).await.ends_with(" 1") {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "shared counting resumed without a restart");
    let _: Option<Value> = None;
}
