//! A client that goes away cancels the upstream request.

mod common;

use bytes::Bytes;
use common::{Harness, TOKEN, eventually};
use fake_upstream::Script;
use http_body_util::BodyExt;
use serde_json::json;

fn body(stream: bool) -> Bytes {
    Bytes::from(
        json!({"model":"fast","stream":stream,"messages":[{"role":"user","content":"x"}]})
            .to_string(),
    )
}

#[tokio::test]
async fn disconnect_while_waiting_for_headers_cancels_upstream() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        hang: true,
        ..Script::default()
    });
    let url = h.url("/v1/chat/completions");
    let req = tokio::spawn(async move {
        common::start(
            "POST",
            &url,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            body(false),
        )
        .await
    });
    assert!(eventually(|| !h.fake.requests().is_empty()).await);
    req.abort();
    assert!(
        eventually(|| h.fake.disconnects() == 1).await,
        "upstream saw the connection close"
    );
    let o = h.outcome().await;
    assert_eq!((o.http_status, o.error_kind), (499, Some("client_closed")));
}

#[tokio::test]
async fn disconnect_mid_stream_cancels_upstream() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        text: Some("many words in a slow stream that goes on and on".into()),
        chunk_delay_ms: 100,
        ..Script::default()
    });
    let resp = common::start(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body(true),
    )
    .await;
    let mut b = resp.into_body();
    let first = b.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(b);
    assert!(
        eventually(|| h.fake.disconnects() == 1).await,
        "upstream saw the connection close"
    );
    assert_eq!(h.fake.completed(), 0);
    let o = h.outcome().await;
    assert_eq!(o.http_status, 499);
    assert!(o.stream);
}
