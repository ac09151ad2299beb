//! Bad input gets a precise error in the OpenAI shape, and the router keeps serving.

mod common;

use bytes::Bytes;
use common::{Harness, TOKEN, send};
use serde_json::json;

async fn post(h: &Harness, body: &str) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::from(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn invalid_json_names_line_and_column() {
    let mut h = Harness::start().await;
    let r = post(&h, "{\n  \"model\": \"fast\",\n  \"messages\": [oops]\n}").await;
    assert_eq!(r.status, 400);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("line 3 column"), "{msg}");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.header("x-request-id").is_some());
    assert_eq!(h.outcome().await.error_kind, Some("invalid_request"));
}

#[tokio::test]
async fn missing_fields_are_named() {
    let h = Harness::start().await;
    let r = post(&h, r#"{"messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["param"].clone()),
        (400, json!("model"))
    );
    let r = post(&h, r#"{"model":"fast"}"#).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["param"].clone()),
        (400, json!("messages"))
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'messages'")
    );
}

#[tokio::test]
async fn oversize_body_is_413() {
    let h = Harness::start().await;
    let big = "x".repeat(70_000);
    let r = post(
        &h,
        &json!({"model":"fast","messages":[{"role":"user","content": big}]}).to_string(),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    // Still serving.
    let ok = post(
        &h,
        r#"{"model":"fast","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_openai_shape_with_a_request_id() {
    let h = Harness::start().await;
    let r = send("POST", &h.url("/v1/nope"), &[], Bytes::new()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["message"], "Invalid URL (POST /v1/nope)");
    assert!(r.header("x-request-id").is_some());
    let r = send("GET", &h.url("/v1/chat/completions"), &[], Bytes::new()).await;
    assert_eq!(r.status, 405);
    assert!(r.json()["error"]["message"].is_string());
}

#[tokio::test]
async fn request_ids_are_validated_or_generated() {
    let h = Harness::start().await;
    let long = "a".repeat(129);
    for (given, kept) in [
        ("good-id_1.2", true),
        (long.as_str(), false),
        ("has space", false),
    ] {
        let r = send(
            "GET",
            &h.url("/livez"),
            &[("x-request-id", given)],
            Bytes::new(),
        )
        .await;
        let id = r.header("x-request-id").unwrap().to_string();
        assert_eq!(id == given, kept, "{given:?} -> {id:?}");
        if !kept {
            let u = uuid_version(&id);
            assert_eq!(u, Some('7'), "generated ids are UUIDv7: {id}");
        }
    }
}

fn uuid_version(id: &str) -> Option<char> {
    (id.len() == 36).then(|| id.chars().nth(14)).flatten()
}
