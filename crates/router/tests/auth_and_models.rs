//! Caller auth and the `/v1/models` listing.

mod common;

use bytes::Bytes;
use common::{Harness, TOKEN, send};
use serde_json::json;

fn chat_body(model: &str) -> Bytes {
    Bytes::from(
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
}

#[tokio::test]
async fn missing_and_unknown_tokens_get_401_in_openai_shape() {
    let h = Harness::start().await;
    let url = h.url("/v1/chat/completions");
    let none = send("POST", &url, &[], chat_body("fast")).await;
    assert_eq!(none.status, 401);
    let e = none.json()["error"].clone();
    assert_eq!(e["code"], "missing_api_key");
    assert!(e.get("param").is_some() && e.get("type").is_some());
    let bad = send(
        "POST",
        &url,
        &[("authorization", "Bearer nope")],
        chat_body("fast"),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["error"]["code"], "invalid_api_key");
    assert!(!bad.text().contains("nope"));
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn x_api_key_works_and_a_token_without_caller_role_gets_403() {
    let h = Harness::start().await;
    let url = h.url("/v1/chat/completions");
    let ok = send("POST", &url, &[("x-api-key", TOKEN)], chat_body("fast")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let metrics = send(
        "POST",
        &url,
        &[("authorization", "Bearer metrics-token")],
        chat_body("fast"),
    )
    .await;
    assert_eq!(metrics.status, 403);
    assert_eq!(metrics.json()["error"]["type"], "permission_error");
}

#[tokio::test]
async fn groups_outside_the_token_look_like_unknown_groups() {
    let h = Harness::start().await;
    let url = h.url("/v1/chat/completions");
    let auth = [("authorization", "Bearer test-token")];
    let hidden = send("POST", &url, &auth, chat_body("secret")).await;
    let unknown = send("POST", &url, &auth, chat_body("no-such-group")).await;
    for r in [&hidden, &unknown] {
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["error"]["code"], "model_not_found");
        assert_eq!(r.json()["error"]["param"], "model");
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn models_lists_exactly_the_callers_groups() {
    let h = Harness::start().await;
    let auth = [("authorization", "Bearer test-token")];
    let list = send("GET", &h.url("/v1/models"), &auth, Bytes::new()).await;
    assert_eq!(list.status, 200);
    let v = list.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["coder", "fast"]);
    assert_eq!(v["data"][0]["object"], "model");
    let one = send("GET", &h.url("/v1/models/coder"), &auth, Bytes::new()).await;
    assert_eq!(one.json()["id"], "coder");
    let hidden = send("GET", &h.url("/v1/models/secret"), &auth, Bytes::new()).await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.json()["error"]["code"], "model_not_found");
    let anon = send("GET", &h.url("/v1/models"), &[], Bytes::new()).await;
    assert_eq!(anon.status, 401);
}
