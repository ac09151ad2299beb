//! Health endpoints and graceful shutdown.

mod common;

use bytes::Bytes;
use common::{Harness, TOKEN, send};
use fake_upstream::Script;
use serde_json::json;

#[tokio::test]
async fn health_endpoints_need_no_token_and_reveal_nothing() {
    let h = Harness::start().await;
    let live = send("GET", &h.url("/livez"), &[], Bytes::new()).await;
    assert_eq!(live.status, 200);
    let ready = send("GET", &h.url("/readyz"), &[], Bytes::new()).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ok");
    let version = send("GET", &h.url("/version"), &[], Bytes::new()).await;
    let v = version.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["config_hash"].as_str().unwrap().len(), 64);
    for body in [live.text(), ready.text(), version.text()] {
        for secret in ["fake", "coder", "app", "sk-upstream-secret", "127.0.0.1"] {
            assert!(!body.contains(secret), "{secret} leaked in {body}");
        }
    }
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_reports_not_ready() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        delay_ms: 600,
        ..Script::default()
    });
    let url = h.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        send(
            "POST",
            &url,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Bytes::from(
                json!({"model":"fast","messages":[{"role":"user","content":"x"}]}).to_string(),
            ),
        )
        .await
    });
    assert!(common::eventually(|| !h.fake.requests().is_empty()).await);
    h.shutdown();
    let state = h.state.clone();
    assert!(common::eventually(|| state.draining()).await);
    let resp = in_flight.await.unwrap();
    assert_eq!(
        resp.status,
        200,
        "the in-flight request finished: {}",
        resp.text()
    );
    let drained = h.server.take().unwrap().await.unwrap().unwrap();
    assert!(drained, "drain completed within the drain timeout");
    assert_eq!(h.outcome().await.http_status, 200);
}
