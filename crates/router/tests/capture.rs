//! Content capture (issue 14): `all`, `errors`, `sampled` and `none`, PII redacted before
//! storing unless `redact_pii = false`, streams captured as assembled text and tool calls,
//! bodies cut at `max_body_bytes`, the usage record naming the policy, admin-only reads
//! (report-admins see that content exists, not the content), and retention — on SQLite and
//! PostgreSQL.

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::Script;
use serde_json::{Value, json};
use std::time::Duration;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
[providers.oai]
kind = "openai"
base_url = "FAKE"
[providers.claude]
kind = "anthropic"
base_url = "FAKE_ROOT"
[groups.chat]
[[groups.chat.targets]]
provider = "oai"
model = "m-chat"
[groups.claude]
[[groups.claude.targets]]
provider = "claude"
model = "m-claude"
[[callers]]
name = "alice"
project = "payments"
groups = ["*"]
token = "alice-token"
[[callers]]
name = "bob"
project = "search"
groups = ["*"]
token = "bob-token"
[[callers]]
name = "carol"
project = "raw"
groups = ["*"]
token = "carol-token"
[[callers]]
name = "ops"
roles = ["admin"]
token = "admin-token"
[[callers]]
name = "finance"
roles = ["report-admin"]
token = "report-token"
[[capture_policies]]
name = "debug-payments"
applies_to = { projects = ["payments"] }
capture = "all"
max_body_bytes = 4096
retention_days = 7
[[capture_policies]]
name = "errors-only"
applies_to = { projects = ["search"] }
capture = "errors"
[[capture_policies]]
name = "raw-small"
applies_to = { projects = ["raw"] }
capture = "all"
max_body_bytes = 120
redact_pii = false
"#;

const EMAIL: &str = "jane.doe@example.com";

async fn chat(h: &Harness, token: &str, id: &str, group: &str, stream: bool) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-request-id", id),
        ],
        Bytes::from(
            json!({"model": group, "stream": stream, "messages": [
                {"role": "user", "content": format!("Please write to {EMAIL} about the refund.")}]})
            .to_string(),
        ),
    )
    .await
}

async fn get(h: &Harness, path: &str, token: &str) -> common::Resp {
    send(
        "GET",
        &h.url(path),
        &[("authorization", &format!("Bearer {token}"))],
        Bytes::new(),
    )
    .await
}

/// The captures of `id`, waiting for the writer (404 until one is stored).
async fn captures(h: &Harness, id: &str) -> Vec<Value> {
    for _ in 0..200 {
        let r = get(h, &format!("/admin/requests/{id}/content"), "admin-token").await;
        if r.status == 200 {
            return r.json()["captures"].as_array().unwrap().clone();
        }
        assert_eq!(r.status, 404, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

async fn record(h: &Harness, id: &str) -> Value {
    for _ in 0..200 {
        let r = get(h, &format!("/admin/requests/{id}"), "report-token").await;
        if r.status == 200 {
            return r.json()["records"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no record for {id}");
}

async fn capture_modes(url: String) {
    let h = Harness::with_store(CONFIG, &url).await;
    let ids = [
        common::uuid_like(),
        common::uuid_like(),
        common::uuid_like(),
        common::uuid_like(),
    ];

    // `all`, whole answer: request and answer stored with PII redacted.
    h.fake.enqueue(Script {
        text: Some(format!("I will write to {EMAIL} today.")),
        ..Script::default()
    });
    assert_eq!(
        chat(&h, "alice-token", &ids[0], "chat", false).await.status,
        200
    );
    let c = captures(&h, &ids[0]).await;
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c["policy"], "debug-payments");
    assert_eq!(c["pii_redacted"], true);
    let req: Value = serde_json::from_str(c["request_body"].as_str().unwrap()).unwrap();
    assert_eq!(
        req["messages"][0]["content"],
        "Please write to [EMAIL_1] about the refund."
    );
    let resp: Value = serde_json::from_str(c["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(
        resp["choices"][0]["message"]["content"],
        "I will write to [EMAIL_1] today."
    );
    assert_eq!(c["request_truncated"], false);
    let expires = c["expires_at_ms"].as_i64().unwrap() - c["captured_at_ms"].as_i64().unwrap();
    assert_eq!(expires, 7 * 86_400_000);
    assert!(!c.to_string().contains(EMAIL));
    assert_eq!(
        record(&h, &ids[0]).await["capture_policy"],
        "debug-payments"
    );

    // Only admins read content; a report-admin sees that it exists; callers see nothing.
    let path = format!("/admin/requests/{}/content", ids[0]);
    assert_eq!(get(&h, &path, "report-token").await.status, 403);
    assert_eq!(get(&h, &path, "alice-token").await.status, 403);
    assert_eq!(get(&h, &path, "nobody").await.status, 401);

    // `all`, a translated stream: captured as its assembled text, not SSE.
    h.fake.enqueue(Script {
        chunks: Some(vec!["Mail ".into(), "sent to ".into(), format!("{EMAIL}.")]),
        ..Script::default()
    });
    let r = chat(&h, "alice-token", &ids[1], "claude", true).await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains(EMAIL),
        "the caller's answer is not changed by capture"
    );
    let c = captures(&h, &ids[1]).await;
    let resp: Value = serde_json::from_str(c[0]["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(
        resp,
        json!({"text": "Mail sent to [EMAIL_1].", "tool_calls": []})
    );

    // A passed-through stream: the bytes go as they came, the capture decodes them aside.
    let pass_id = common::uuid_like();
    h.fake.enqueue(Script {
        chunks: Some(vec!["Sent ".into(), format!("to {EMAIL}")]),
        ..Script::default()
    });
    let r = chat(&h, "alice-token", &pass_id, "chat", true).await;
    assert_eq!(r.status, 200);
    let c = captures(&h, &pass_id).await;
    let resp: Value = serde_json::from_str(c[0]["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(resp, json!({"text": "Sent to [EMAIL_1]", "tool_calls": []}));

    // `errors`: a success is not captured, a failure is (with the error the caller got).
    assert_eq!(
        chat(&h, "bob-token", &ids[2], "chat", false).await.status,
        200
    );
    h.fake.enqueue(Script {
        status: Some(400),
        error: Some("bad things".into()),
        ..Script::default()
    });
    let r = chat(&h, "bob-token", &ids[3], "chat", false).await;
    assert_eq!(r.status, 400);
    let c = captures(&h, &ids[3]).await;
    assert_eq!(c[0]["policy"], "errors-only");
    assert!(
        c[0]["response_body"]
            .as_str()
            .unwrap()
            .contains("bad things"),
        "{c:?}"
    );
    assert!(h.written(5).await);
    let rec = record(&h, &ids[2]).await;
    assert_eq!(rec["capture_policy"], Value::Null);
    let r = get(
        &h,
        &format!("/admin/requests/{}/content", ids[2]),
        "admin-token",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(record(&h, &ids[3]).await["capture_policy"], "errors-only");

    // `redact_pii = false`, cut at 120 bytes and marked.
    let raw_id = common::uuid_like();
    h.fake.enqueue(Script {
        text: Some("x".repeat(500)),
        ..Script::default()
    });
    assert_eq!(
        chat(&h, "carol-token", &raw_id, "chat", false).await.status,
        200
    );
    let c = captures(&h, &raw_id).await;
    assert_eq!(c[0]["pii_redacted"], false);
    let body = c[0]["request_body"].as_str().unwrap();
    assert!(body.contains(EMAIL), "raw capture keeps the text: {body}");
    assert!(body.len() <= 120 && c[0]["request_truncated"] == true);
    assert!(c[0]["response_body"].as_str().unwrap().len() <= 120);
    assert_eq!(c[0]["response_truncated"], true);
}

async fn sampling_and_retention(url: String) {
    let text = CONFIG.replace(
        "capture = \"all\"\nmax_body_bytes = 4096",
        "capture = \"sampled\"\nsample_rate = 0.000000001\nmax_body_bytes = 4096",
    );
    let h = Harness::with_store(&text, &url).await;
    for _ in 0..20 {
        let id = common::uuid_like();
        assert_eq!(
            chat(&h, "alice-token", &id, "chat", false).await.status,
            200
        );
    }
    assert!(h.written(20).await);
    let store = h.store.clone().unwrap();
    // Nothing sampled at one in a billion.
    let rows = store.purge_captures(i64::MAX).await.unwrap();
    assert_eq!(rows, 0);

    // Retention: what has expired goes, what has not stays.
    let now = router::time::now_ms();
    for (id, expires) in [("old", now - 1), ("fresh", now + 86_400_000)] {
        store
            .insert_capture(&router::usage::CapturedContent {
                capture_id: format!("{id}-{}", common::uuid_like()),
                request_id: id.into(),
                policy: "p".into(),
                captured_at_ms: now - 10,
                expires_at_ms: expires,
                surface: "openai_chat".into(),
                request_body: "{}".into(),
                request_truncated: false,
                response_body: "{}".into(),
                response_truncated: false,
                pii_redacted: true,
            })
            .await
            .unwrap();
    }
    assert_eq!(store.purge_captures(now).await.unwrap(), 1);
    assert!(store.captures("old").await.unwrap().is_empty());
    assert_eq!(store.captures("fresh").await.unwrap().len(), 1);
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::common::sqlite_url()).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::common::postgres_url()).await })*
        }
    };
}

both_backends!(capture_modes, sampling_and_retention);

#[test]
fn config_errors_name_their_key_paths() {
    let bad = CONFIG
        .replace("capture = \"errors\"", "capture = \"sometimes\"")
        .replace("max_body_bytes = 120", "max_body_bytes = 0")
        .replace("FAKE_ROOT", "http://127.0.0.1:1")
        .replace("FAKE", "http://127.0.0.1:1/v1")
        + "[[capture_policies]]\nname = \"s\"\ncapture = \"sampled\"\n";
    let errors = router::config::parse(&bad).unwrap_err().to_string();
    for want in [
        "capture_policies[1].capture: \"sometimes\" is not one of none, errors, sampled, all",
        "capture_policies[2].max_body_bytes: must be between 1 and 16777216",
        "capture_policies[3].sample_rate: capture = \"sampled\" needs a sample_rate",
    ] {
        assert!(errors.contains(want), "missing {want:?} in:\n{errors}");
    }
}
