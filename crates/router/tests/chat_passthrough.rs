//! Chat Completions passthrough: what goes upstream, what comes back, usage tapping.

mod common;

use bytes::Bytes;
use common::{Harness, TOKEN, send};
use fake_upstream::{Script, ScriptUsage};
use serde_json::{Value, json};

fn ask(stream: bool) -> Value {
    json!({"model": "fast", "stream": stream, "messages": [{"role": "user", "content": "Say hi"}]})
}

#[tokio::test]
async fn non_stream_rewrites_only_model_and_keeps_unknown_fields() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        usage: Some(ScriptUsage {
            input: 11,
            output: 7,
            cached: 3,
            reasoning: 2,
        }),
        ..Script::default()
    });
    let raw = r#"{"model":"fast","messages":[{"role":"user","content":"Say hi"}],"x_vendor_knob":{"deep":[1,2.50,"x"]},"temperature":0.2}"#;
    let resp = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("x-request-id", "req-abc-123"),
        ],
        Bytes::from(raw),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-request-id"), Some("req-abc-123"));
    let overhead: f64 = resp
        .header("x-router-overhead-ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);
    let body = resp.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["system_fingerprint"], "fp_fake",
        "unknown response fields pass through"
    );
    let seen = &h.fake.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "fake-fast");
    assert_eq!(seen.body["x_vendor_knob"], json!({"deep": [1, 2.50, "x"]}));
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-upstream-secret")
    );
    assert_eq!(seen.header("x-request-id"), Some("req-abc-123"));
    assert_eq!(seen.header("x-provider-extra"), Some("on"));
    assert!(
        seen.headers.iter().all(|(_, v)| !v.contains(TOKEN)),
        "caller token never goes upstream"
    );
    assert!(seen.body.get("stream_options").is_none());
    let o = h.outcome().await;
    assert_eq!(
        (o.http_status, o.caller.as_deref(), o.group.as_deref()),
        (200, Some("app"), Some("fast"))
    );
    let u = o.usage.expect("usage tapped");
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cached_input_tokens,
            u.reasoning_tokens
        ),
        (11, 7, 3, 2)
    );
    assert_eq!(o.attempts.len(), 1);
    assert_eq!(&*o.attempts[0].model, "fake-fast");
}

#[tokio::test]
async fn stream_forces_usage_upstream_and_hides_it_from_callers_who_did_not_ask() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        text: Some("one two three".into()),
        usage: Some(ScriptUsage {
            input: 5,
            output: 3,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    });
    let resp = h.chat(&ask(true)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let data = resp.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "usage chunk removed"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three");
    assert_eq!(
        h.fake.requests()[0].body["stream_options"],
        json!({"include_usage": true})
    );
    let o = h.outcome().await;
    assert!(o.stream);
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((5, 3))
    );
    assert!(o.ttft.is_some());
}

#[tokio::test]
async fn stream_keeps_usage_chunk_when_asked() {
    let mut h = Harness::start().await;
    let mut body = ask(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = h.chat(&body).await;
    let data = resp.sse_data();
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(h.outcome().await.usage.is_some());
}

/// Streams `script` through the router: each data frame the caller gets, with when it came.
async fn stream_frames(script: Script) -> Vec<(std::time::Duration, Bytes)> {
    let h = Harness::start().await;
    h.fake.enqueue(script);
    let resp = common::start(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::from(ask(true).to_string()),
    )
    .await;
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let t0 = std::time::Instant::now();
    let mut frames = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames.push((t0.elapsed(), d));
        }
    }
    frames
}

#[tokio::test]
async fn stream_chunks_arrive_as_the_upstream_sends_them() {
    let frames = stream_frames(Script {
        chunks: Some(vec!["a".into(), "b".into(), "c".into()]),
        text: Some("abc".into()),
        chunk_delay_ms: 150,
        ..Script::default()
    })
    .await;
    let arrivals: Vec<_> = frames
        .iter()
        .filter(|(_, d)| String::from_utf8_lossy(d).contains("\"content\":\""))
        .map(|(t, _)| *t)
        .collect();
    assert!(arrivals.len() >= 3, "{arrivals:?}");
    let spread = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(
        spread.as_millis() >= 250,
        "chunks were buffered: {arrivals:?}"
    );
}

/// Events the upstream sends in one burst leave the router in a few writes, not one per event:
/// each write is one HTTP chunk on the caller's side.
#[tokio::test]
async fn stream_burst_is_sent_in_a_few_chunks() {
    let words: Vec<String> = (0..30).map(|i| format!("w{i} ")).collect();
    let frames = stream_frames(Script {
        chunks: Some(words.clone()),
        text: Some(words.concat()),
        ..Script::default()
    })
    .await;
    let chunks = frames.len();
    let text: String = frames
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    let events = text.matches("data: ").count();
    assert!(events >= 32, "every event arrives: {events}\n{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    for w in &words {
        assert!(
            text.contains(&format!("\"content\":\"{w}\"")),
            "{w} missing"
        );
    }
    assert!(chunks <= 4, "{events} events came in {chunks} chunks");
}

#[tokio::test]
async fn upstream_client_errors_come_back_unchanged() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        status: Some(422),
        error: Some("messages[0].content is too spicy".into()),
        ..Script::default()
    });
    let resp = h.chat(&ask(false)).await;
    assert_eq!(resp.status, 422);
    assert_eq!(
        resp.json()["error"]["message"],
        "messages[0].content is too spicy"
    );
    assert_eq!(
        h.fake.requests().len(),
        1,
        "400-class errors are not retried"
    );
    let o = h.outcome().await;
    assert_eq!((o.http_status, o.error_kind), (422, Some("upstream_4xx")));
}

#[tokio::test]
async fn retryable_failure_falls_back_to_the_next_target() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        status: Some(503),
        ..Script::default()
    });
    let mut body = ask(false);
    body["model"] = json!("coder");
    let resp = h.chat(&body).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let models: Vec<Value> = h
        .fake
        .requests()
        .iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(models, [json!("fake-coder-1"), json!("fake-coder-2")]);
    let o = h.outcome().await;
    assert!(o.fallback_used());
    assert_eq!(o.attempts[0].outcome, "upstream_5xx");
    assert_eq!(o.attempts[0].status, Some(503));
}

#[tokio::test]
async fn upstream_credential_rejection_is_a_502_not_a_401() {
    let h = Harness::start().await;
    h.fake.enqueue(Script {
        status: Some(401),
        error: Some("bad key sk-upstream-secret".into()),
        ..Script::default()
    });
    let resp = h.chat(&ask(false)).await;
    assert_eq!(resp.status, 502);
    let err = resp.json()["error"].clone();
    assert_eq!(err["code"], "upstream_credential_rejected");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("credential for provider fake was rejected")
    );
    assert!(!resp.text().contains("sk-upstream-secret"));
}

#[tokio::test]
async fn non_json_upstream_body_is_a_502() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        raw_body: Some("<html>oops</html>".into()),
        ..Script::default()
    });
    let resp = h.chat(&ask(false)).await;
    assert_eq!(resp.status, 502);
    assert_eq!(resp.json()["error"]["type"], "server_error");
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a JSON object")
    );
    assert_eq!(h.outcome().await.error_kind, Some("invalid_response"));
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_event() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        text: Some("a b c d e f".into()),
        close_after_events: Some(3),
        chunk_delay_ms: 30,
        ..Script::default()
    });
    let resp = h.chat(&ask(true)).await;
    assert_eq!(resp.status, 200);
    let data = resp.sse_data();
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off")
    );
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert_eq!(h.outcome().await.error_kind, Some("stream_broken"));
}

#[tokio::test]
async fn caller_timeout_header_bounds_the_wait() {
    let mut h = Harness::start().await;
    h.fake.enqueue(Script {
        delay_ms: 3000,
        ..Script::default()
    });
    let t0 = std::time::Instant::now();
    let resp = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("x-router-timeout-ms", "300"),
        ],
        Bytes::from(ask(false).to_string()),
    )
    .await;
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(t0.elapsed().as_millis() < 2000);
    assert_eq!(resp.json()["error"]["code"], "deadline_exceeded");
    assert_eq!(h.outcome().await.error_kind, Some("deadline_exceeded"));
}
