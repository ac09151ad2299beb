//! The upstream connection pool's idle timeout is enforced (issue 12: without a pool timer,
//! idle connections outlived `pool_idle_timeout` — 460 were still open 100 s after a load).

mod common;

use common::Harness;
use fake_upstream::Script;
use serde_json::json;
use std::time::Duration;

/// Established TCP connections whose local port is `port` (the fake upstream's side of the
/// router's pooled connections), from `/proc/net/tcp`.
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port_hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[1].ends_with(&port_hex) && cols[3] == "01"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_close_after_the_pool_idle_timeout() {
    let config = common::default_config().replace(
        "api_key = \"sk-upstream-secret\"",
        "api_key = \"sk-upstream-secret\"\npool_idle_timeout_ms = 500",
    );
    let h = Harness::with_config(&config).await;
    let port = h.fake.addr().port();
    for _ in 0..20 {
        h.fake.enqueue(Script {
            delay_ms: 200,
            ..Script::default()
        });
    }
    let ask = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
    let calls = (0..20).map(|_| h.chat(&ask));
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|r| r.status == 200));
    let open_after_load = established_to(port);
    assert!(
        open_after_load >= 10,
        "{open_after_load} pooled connections after the load"
    );
    let mut open = open_after_load;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = established_to(port);
        if open == 0 {
            break;
        }
    }
    assert_eq!(
        open, 0,
        "pooled connections still open 4 s after a 0.5 s idle timeout"
    );
}
