//! Hostile input (issue 12): every surface and operator endpoint answers malformed input with a
//! 4xx in the caller's dialect — never a 500, never a panic — forwards nothing upstream, keeps
//! caller-controlled text bounded, and goes on serving.

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::Script;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
[providers.oai]
kind = "openai"
base_url = "FAKE"
api_key = "sk-upstream-secret-0001"
[providers.claude]
kind = "anthropic"
base_url = "FAKE_ROOT"
api_key = "sk-ant-upstream-secret-0002"
[providers.resp]
kind = "openai-responses"
base_url = "FAKE"
api_key = "sk-resp-upstream-secret-0003"
[groups.fast]
[[groups.fast.targets]]
provider = "oai"
model = "fake-fast"
[groups.claude]
[[groups.claude.targets]]
provider = "claude"
model = "claude-up"
[groups.resp]
[[groups.resp.targets]]
provider = "resp"
model = "resp-up"
[[callers]]
name = "app"
groups = ["*"]
token = "test-token"
[[callers]]
name = "ops"
roles = ["admin"]
token = "admin-token"
[[callers]]
name = "metrics"
roles = ["metrics-admin"]
token = "metrics-token"
"#;

/// A surface: path, a valid body, and whether errors come in Anthropic's shape.
struct Surface {
    path: &'static str,
    valid: Value,
    anthropic: bool,
}

fn surfaces() -> Vec<Surface> {
    vec![
        Surface {
            path: "/v1/chat/completions",
            valid: json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}),
            anthropic: false,
        },
        Surface {
            path: "/v1/messages",
            valid: json!({"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
            anthropic: true,
        },
        Surface {
            path: "/v1/responses",
            valid: json!({"model": "resp", "input": "hi"}),
            anthropic: false,
        },
        Surface {
            path: "/v1/messages/count_tokens",
            valid: json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
            anthropic: true,
        },
    ]
}

/// A hostile body: its name, bytes, extra headers, and the status it must get.
struct Hostile {
    name: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
}

fn hostile(name: &str, body: impl Into<Vec<u8>>, status: u16) -> Hostile {
    Hostile {
        name: name.into(),
        body: body.into(),
        headers: Vec::new(),
        status,
    }
}

/// The valid body with `key` set to `value`.
fn with(valid: &Value, key: &str, value: Value) -> Vec<u8> {
    let mut v = valid.clone();
    v[key] = value;
    serde_json::to_vec(&v).unwrap()
}

fn battery(s: &Surface) -> Vec<Hostile> {
    let model = s.valid["model"].as_str().unwrap();
    let cap = match s.path {
        "/v1/responses" => "max_output_tokens",
        "/v1/chat/completions" => "max_completion_tokens",
        _ => "max_tokens",
    };
    let text = String::from_utf8(serde_json::to_vec(&s.valid).unwrap()).unwrap();
    let deep = format!(
        "{{\"model\":\"{model}\",\"messages\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut invalid_utf8 = text.replace("\"hi\"", "\"h\u{1}i\"").into_bytes();
    let at = invalid_utf8.iter().position(|b| *b == 1).unwrap();
    invalid_utf8.splice(at..at + 1, [0xff, 0xfe]);
    let mut with_nul = text.clone().into_bytes();
    with_nul.insert(1, 0);
    let duplicate = text.replacen('{', &format!("{{\"model\":\"{model}\","), 1);
    let mut list = vec![
        hostile(
            "top-level array (issue 12 shape)",
            format!("[\"{model}\",[1],1,null,false,1]"),
            400,
        ),
        hostile(
            "array read positionally",
            format!("[\"{model}\",[{{\"role\":\"user\",\"content\":\"x\"}}],true]"),
            400,
        ),
        hostile("top-level string", "\"hello\"", 400),
        hostile("top-level number", "42", 400),
        hostile("top-level null", "null", 400),
        hostile("top-level boolean", "true", 400),
        hostile("empty body", "", 400),
        hostile("whitespace body", "  \n ", 400),
        hostile("nesting 10,000 deep", deep, 400),
        hostile("invalid UTF-8 in a string", invalid_utf8, 400),
        hostile("NUL byte in the JSON text", with_nul, 400),
        hostile("duplicate model key", duplicate, 400),
        hostile("truncated JSON", &text[..text.len() / 2], 400),
        hostile("model is a number", with(&s.valid, "model", json!(5)), 400),
        hostile("model is empty", with(&s.valid, "model", json!("")), 400),
        hostile(
            "model is an object",
            with(&s.valid, "model", json!({"a": 1})),
            400,
        ),
        hostile(
            "stream is a string",
            with(&s.valid, "stream", json!("yes")),
            400,
        ),
        hostile(
            "huge token cap",
            text.replacen('{', &format!("{{\"{cap}\":1e400,"), 1),
            400,
        ),
        hostile(
            "token cap is negative",
            text.replacen('{', &format!("{{\"{cap}\":-5,"), 1),
            400,
        ),
        hostile(
            "token cap is fractional",
            text.replacen('{', &format!("{{\"{cap}\":1.5,"), 1),
            400,
        ),
        Hostile {
            name: "text/plain content type".into(),
            body: text.clone().into_bytes(),
            headers: vec![("content-type", "text/plain")],
            status: 415,
        },
        Hostile {
            name: "form content type".into(),
            body: text.clone().into_bytes(),
            headers: vec![("content-type", "application/x-www-form-urlencoded")],
            status: 415,
        },
        Hostile {
            name: "gzip content encoding".into(),
            body: text.clone().into_bytes(),
            headers: vec![("content-encoding", "gzip")],
            status: 415,
        },
        hostile(
            "body over the limit (with content-length)",
            with(&s.valid, "pad", json!("x".repeat(70_000))),
            413,
        ),
    ];
    match s.path {
        "/v1/chat/completions" => {
            list.push(hostile(
                "messages is a string",
                with(&s.valid, "messages", json!("x")),
                400,
            ));
            list.push(hostile(
                "messages is empty",
                with(&s.valid, "messages", json!([])),
                400,
            ));
            list.push(hostile(
                "max_tokens is a string",
                with(&s.valid, "max_tokens", json!("big")),
                400,
            ));
        }
        "/v1/messages" | "/v1/messages/count_tokens" => {
            list.push(hostile(
                "messages is a number",
                with(&s.valid, "messages", json!(7)),
                400,
            ));
            list.push(hostile(
                "content is a number",
                with(
                    &s.valid,
                    "messages",
                    json!([{"role": "user", "content": 5}]),
                ),
                400,
            ));
            list.push(hostile(
                "unknown role",
                with(
                    &s.valid,
                    "messages",
                    json!([{"role": "robot", "content": "x"}]),
                ),
                400,
            ));
            list.push(hostile(
                "system is a number",
                with(&s.valid, "system", json!(3)),
                400,
            ));
        }
        _ => {
            list.push(hostile(
                "input is a number",
                with(&s.valid, "input", json!(3)),
                400,
            ));
            list.push(hostile(
                "tools is an object",
                with(&s.valid, "tools", json!({"a": 1})),
                400,
            ));
        }
    }
    list
}

fn assert_dialect_error(s: &Surface, r: &common::Resp, what: &str) {
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("{} {what}: not JSON: {}", s.path, r.text()));
    if s.anthropic {
        assert_eq!(v["type"], "error", "{} {what}: {v}", s.path);
        assert!(v["error"]["type"].is_string(), "{} {what}: {v}", s.path);
        assert!(v["error"]["message"].is_string(), "{} {what}: {v}", s.path);
    } else {
        assert!(v["error"]["message"].is_string(), "{} {what}: {v}", s.path);
        assert!(v["error"]["type"].is_string(), "{} {what}: {v}", s.path);
    }
    assert!(r.header("x-request-id").is_some(), "{} {what}", s.path);
}

#[tokio::test]
async fn every_hostile_body_gets_a_4xx_in_the_callers_dialect_and_nothing_goes_upstream() {
    let mut h = Harness::with_config(CONFIG).await;
    let mut seen = 0;
    for s in surfaces() {
        for b in battery(&s) {
            let mut headers = vec![("authorization", "Bearer test-token")];
            headers.extend(b.headers.iter().copied());
            let r = send("POST", &h.url(s.path), &headers, Bytes::from(b.body)).await;
            assert_ne!(r.status, 500, "{} {}: {}", s.path, b.name, r.text());
            assert_eq!(r.status, b.status, "{} {}: {}", s.path, b.name, r.text());
            assert_dialect_error(&s, &r, &b.name);
            let o = h.outcome().await;
            assert_eq!(o.http_status, b.status, "{} {}: recorded", s.path, b.name);
            assert_ne!(o.error_kind, Some("internal"), "{} {}", s.path, b.name);
            seen += 1;
        }
    }
    assert!(seen > 100, "{seen} inputs");
    let reached: Vec<String> = h
        .fake
        .requests()
        .iter()
        .map(|r| format!("{:?}", r))
        .collect();
    assert!(
        reached.is_empty(),
        "nothing reached the upstream: {reached:?}"
    );
    // Still serving, on every surface.
    for s in surfaces() {
        let r = send(
            "POST",
            &h.url(s.path),
            &[("authorization", "Bearer test-token")],
            Bytes::from(s.valid.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{}: {}", s.path, r.text());
    }
}

/// Issue 12: `["fast",[{"role":"user","content":"x"}],true]` reached the upstream as
/// `["fake-fast",[...]]` with `stream_options` spliced into the user's message; the array
/// shapes of the report panicked a handler (500, recorded as 499).
#[tokio::test]
async fn issue_12_array_bodies_are_400_and_recorded_as_such() {
    let mut h = Harness::with_config(CONFIG).await;
    for (path, body) in [
        ("/v1/chat/completions", r#"["fast",[1]]"#),
        (
            "/v1/chat/completions",
            r#"["fast",[{"role":"user","content":"x"}],true]"#,
        ),
        ("/v1/responses", r#"["resp","hi"]"#),
        ("/v1/messages", r#"["claude",[1],1,null,false,1]"#),
    ] {
        let r = send(
            "POST",
            &h.url(path),
            &[("authorization", "Bearer test-token")],
            Bytes::from(body),
        )
        .await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("must be a JSON object, not an array"), "{msg}");
        if path == "/v1/messages" {
            assert_eq!(r.json()["type"], "error", "Anthropic shape on /v1/messages");
        }
        let o = h.outcome().await;
        assert_eq!(
            (o.http_status, o.error_kind),
            (400, Some("invalid_request"))
        );
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn issue_12_caller_controlled_strings_are_bounded() {
    let mut h = Harness::with_config(CONFIG).await;
    let long_model = "m".repeat(60_000);
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", "Bearer test-token")],
        Bytes::from(
            json!({"model": long_model, "messages": [{"role":"user","content":"x"}]}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        r.body.len() < 1_000,
        "the 404 echoes {} bytes",
        r.body.len()
    );
    let o = h.outcome().await;
    let g = o.group.unwrap();
    assert!(
        g.len() <= 260 && g.ends_with('…'),
        "recorded group of {} bytes",
        g.len()
    );
    // A 60 KB parent id is not an id: not recorded.
    let parent = "p".repeat(60_000);
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", "Bearer test-token"),
            ("x-router-parent-id", &parent),
        ],
        Bytes::from(
            json!({"model": "fast", "messages": [{"role":"user","content":"x"}]}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.outcome().await.parent_id, None);
    // An unknown path is echoed cut.
    let path = format!("/v1/{}", "z".repeat(8_000));
    let r = send("GET", &h.url(&path), &[], Bytes::new()).await;
    assert_eq!(r.status, 404);
    assert!(
        r.body.len() < 1_000,
        "the 404 echoes {} bytes",
        r.body.len()
    );
    // A huge session key does not enter the affinity map as it is (hashed): still served.
    let key = "s".repeat(20_000);
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[
            ("authorization", "Bearer test-token"),
            ("x-session-id", &key),
        ],
        Bytes::from(
            json!({"model": "fast", "messages": [{"role":"user","content":"x"}]}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
}

/// Issue 12: the WebSocket refusal came before authentication.
#[tokio::test]
async fn issue_12_websocket_upgrade_is_authenticated_first() {
    let h = Harness::with_config(CONFIG).await;
    let upgrade = [("upgrade", "websocket"), ("connection", "upgrade")];
    let get = |extra: Vec<(&'static str, &'static str)>| {
        let mut headers = upgrade.to_vec();
        headers.extend(extra);
        let url = h.url("/v1/responses");
        async move { send("GET", &url, &headers, Bytes::new()).await }
    };
    assert_eq!(get(vec![]).await.status, 401);
    assert_eq!(
        get(vec![("authorization", "Bearer metrics-token")])
            .await
            .status,
        403
    );
    let r = get(vec![("authorization", "Bearer test-token")]).await;
    assert_eq!(r.status, 426);
    assert!(r.json()["error"]["message"].is_string());
}

#[tokio::test]
async fn operator_endpoints_answer_bad_queries_with_400_in_the_openai_shape() {
    let dir = common::sqlite_url();
    let h = Harness::with_store(CONFIG, &dir).await;
    let long = "x".repeat(5_000);
    for q in [
        "/admin/reports/usage?from=yesterday".to_string(),
        "/admin/reports/usage?to=2024-13-45".to_string(),
        "/admin/reports/usage?group_by=colour".to_string(),
        format!("/admin/reports/usage?group_by={long}"),
        "/admin/reports/usage?format=xml".to_string(),
        "/admin/reports/usage?from=5&to=1".to_string(),
        "/admin/reports/usage?from=%FF%FE".to_string(),
        "/admin/exports/usage?format=parquet".to_string(),
        "/admin/exports/usage?from=never".to_string(),
        "/v1/router/usage?group_by=caller".to_string(),
    ] {
        let token = if q.starts_with("/v1/") {
            "Bearer test-token"
        } else {
            "Bearer admin-token"
        };
        let r = send("GET", &h.url(&q), &[("authorization", token)], Bytes::new()).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_query", "{q}");
        assert!(r.body.len() < 1_000, "{q}: {} bytes", r.body.len());
    }
    let r = send(
        "GET",
        &h.url("/admin/requests/%FF"),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let r = send(
        "GET",
        &h.url(&format!("/admin/requests/{}", "q".repeat(3_000))),
        &[("authorization", "Bearer admin-token")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.body.len() < 1_000);
}

/// Sends raw bytes on a new connection and reads what comes back until the server closes or
/// goes quiet.
async fn raw(h: &Harness, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_are_413() {
    let h = Harness::with_config(CONFIG).await;
    let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer test-token\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..6 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(&h, &req).await;
    assert!(
        resp.starts_with("HTTP/1.1 413"),
        "{}",
        &resp[..resp.len().min(300)]
    );
    assert!(resp.contains("request_too_large"));
}

/// What held before the server loop was replaced must still hold: header floods get 431, huge
/// URLs 414, and a request with both Content-Length and Transfer-Encoding is never answered
/// twice (no smuggled second request).
#[tokio::test]
async fn http_abuse_shapes_are_refused() {
    let h = Harness::with_config(CONFIG).await;
    let mut flood = b"GET /livez HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..300 {
        flood.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    flood.extend_from_slice(b"\r\n");
    let resp = raw(&h, &flood).await;
    assert!(
        resp.starts_with("HTTP/1.1 431"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let resp = raw(&h, long.as_bytes()).await;
    assert!(
        resp.starts_with("HTTP/1.1 414"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    let smuggle = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer test-token\r\ncontent-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /livez HTTP/1.1\r\nhost: x\r\n\r\n";
    let resp = raw(&h, smuggle).await;
    let answers = resp.matches("HTTP/1.1 ").count();
    assert!(answers <= 1, "answered {answers} times:\n{resp}");
    assert!(
        !resp.contains("\"status\":\"ok\""),
        "the smuggled request was served"
    );
}

/// Issue 12: an upstream's error text is relayed to the caller; if it echoes the router's own
/// provider key, the caller must not see it — whole bodies and stream error events alike.
#[tokio::test]
async fn issue_12_relayed_upstream_errors_never_carry_the_providers_key() {
    let mut h = Harness::with_config(CONFIG).await;
    let key = "sk-upstream-secret-0001";
    h.fake.enqueue(Script {
        status: Some(400),
        error: Some(format!("Invalid request for key {key}")),
        ..Script::default()
    });
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", "Bearer test-token")],
        Bytes::from(
            json!({"model": "fast", "messages": [{"role":"user","content":"x"}]}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(!r.text().contains(key), "{}", r.text());
    assert!(r.text().contains("***"), "{}", r.text());
    h.outcome().await;
    h.fake.enqueue(Script {
        raw_events: Some(vec![
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n".into(),
            format!("data: {{\"error\":{{\"message\":\"upstream failed for {key}\",\"type\":\"server_error\"}}}}\n\n"),
        ]),
        ..Script::default()
    });
    let r = send(
        "POST",
        &h.url("/v1/chat/completions"),
        &[("authorization", "Bearer test-token")],
        Bytes::from(
            json!({"model": "fast", "stream": true, "messages": [{"role":"user","content":"x"}]})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("upstream failed for ***"), "{}", r.text());
    assert!(!r.text().contains(key), "{}", r.text());
    // The same through translation (Messages caller, Chat upstream).
    h.outcome().await;
    h.fake.enqueue(Script {
        raw_events: Some(vec![format!(
            "data: {{\"error\":{{\"message\":\"upstream failed for {key}\",\"type\":\"server_error\"}}}}\n\n"
        )]),
        ..Script::default()
    });
    let mut cfg = CONFIG.to_string();
    cfg.push_str(
        "[groups.via_chat]\n[[groups.via_chat.targets]]\nprovider = \"oai\"\nmodel = \"m\"\n",
    );
    let h2 = Harness::with_config(&cfg).await;
    h2.fake.enqueue(Script {
        raw_events: Some(vec![format!(
            "data: {{\"error\":{{\"message\":\"upstream failed for {key}\",\"type\":\"server_error\"}}}}\n\n"
        )]),
        ..Script::default()
    });
    let r = send(
        "POST",
        &h2.url("/v1/messages"),
        &[("x-api-key", "test-token"), ("anthropic-version", "2023-06-01")],
        Bytes::from(json!({"model": "via_chat", "max_tokens": 10, "stream": true, "messages": [{"role":"user","content":"x"}]}).to_string()),
    )
    .await;
    assert!(!r.text().contains(key), "{}", r.text());
}

/// Issue 12: an upstream that never ends an SSE line grew the router's buffer without bound.
/// Now the stream ends with a clean error event once the event passes `max_event_bytes`.
#[tokio::test]
async fn issue_12_an_endless_upstream_line_ends_the_stream_cleanly() {
    let cfg = CONFIG.replace(
        "api_key = \"sk-upstream-secret-0001\"",
        "api_key = \"sk-upstream-secret-0001\"\nmax_event_bytes = 100000",
    );
    let mut h = Harness::with_config(&cfg).await;
    h.fake.enqueue(Script {
        raw_events: Some(vec![
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n".into(),
        ]),
        endless_line_bytes: Some(10_000_000),
        ..Script::default()
    });
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        send(
            "POST",
            &h.url("/v1/chat/completions"),
            &[("authorization", "Bearer test-token")],
            Bytes::from(json!({"model": "fast", "stream": true, "messages": [{"role":"user","content":"x"}]}).to_string()),
        ),
    )
    .await
    .expect("the stream ends instead of buffering forever");
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert!(data[0].contains("\"hi\""), "{data:?}");
    let last = data.last().unwrap();
    assert!(last.contains("max_event_bytes"), "{last}");
    let o = h.outcome().await;
    assert_eq!(o.error_kind, Some("stream_broken"));
}

/// Issue 12: a non-JSON or truncated whole upstream body is a retryable failure (the next target
/// answers), never a panic.
#[tokio::test]
async fn truncated_upstream_bodies_fall_back() {
    let cfg = format!(
        "{CONFIG}\n[groups.two]\nstrategy = \"priority\"\n[[groups.two.targets]]\nprovider = \"oai\"\nmodel = \"first\"\n[[groups.two.targets]]\nprovider = \"oai\"\nmodel = \"second\"\n"
    );
    let mut h = Harness::with_config(&cfg).await;
    for broken in [
        "{\"id\":\"x\",\"choices\":[",
        "[1,2,3]",
        "\u{0}\u{1}garbage",
    ] {
        h.fake.enqueue(Script {
            raw_body: Some(broken.into()),
            ..Script::default()
        });
        let r = send(
            "POST",
            &h.url("/v1/chat/completions"),
            &[("authorization", "Bearer test-token")],
            Bytes::from(
                json!({"model": "two", "messages": [{"role":"user","content":"x"}]}).to_string(),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{broken}: {}", r.text());
        let o = h.outcome().await;
        assert_eq!(o.attempts.len(), 2, "{broken}");
        assert_eq!(o.attempts[0].outcome, "invalid_response", "{broken}");
    }
}
