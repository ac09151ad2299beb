//! The Anthropic Messages surface: passthrough to `anthropic` upstreams, translation to and
//! from `openai` (Chat) upstreams, errors in Anthropic's shape, count_tokens, models.

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::{Script, ScriptUsage, ToolCall};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
[routing]
cooldown_after_failures = 100
[providers.claude]
kind = "anthropic"
base_url = "FAKE_ROOT"
api_key = "sk-ant-upstream"
[providers.oai]
kind = "openai"
base_url = "FAKE"
api_key = "sk-oai-upstream"
[groups.claude]
[[groups.claude.targets]]
provider = "claude"
model = "claude-up"
capabilities = ["tools", "images", "json_schema", "reasoning"]
max_output_tokens = 8192
[groups.gpt]
[[groups.gpt.targets]]
provider = "oai"
model = "gpt-up"
capabilities = ["tools", "images", "json_schema"]
[groups.mixed]
strategy = "priority"
[[groups.mixed.targets]]
provider = "claude"
model = "claude-first"
capabilities = ["tools"]
[[groups.mixed.targets]]
provider = "oai"
model = "gpt-second"
capabilities = ["tools"]
[[callers]]
name = "app"
groups = ["*"]
token = "test-token"
"#;

/// The router config with the fake's root URL for anthropic providers.
async fn start() -> Harness {
    Harness::with_config(CONFIG).await
}

async fn messages(h: &Harness, body: &Value, extra: &[(&str, &str)]) -> common::Resp {
    let mut headers = vec![
        ("x-api-key", "test-token"),
        ("anthropic-version", "2023-06-01"),
    ];
    headers.extend_from_slice(extra);
    send(
        "POST",
        &h.url("/v1/messages?beta=true"),
        &headers,
        Bytes::from(body.to_string()),
    )
    .await
}

fn ask(group: &str, stream: bool) -> Value {
    json!({"model": group, "max_tokens": 1024, "stream": stream,
           "messages": [{"role": "user", "content": "Say hi"}]})
}

fn events(r: &common::Resp) -> Vec<(String, Value)> {
    r.text()
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn passthrough_rewrites_only_model_and_keeps_thinking_signatures_byte_for_byte() {
    let mut h = start().await;
    h.fake.enqueue(Script {
        usage: Some(ScriptUsage {
            input: 100,
            output: 7,
            cached: 60,
            reasoning: 0,
        }),
        ..Script::default()
    });
    let raw = r#"{"model":"claude","max_tokens":1024,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"EqQBCkYIBxgCKkD1.0e10/+x=="},{"type":"text","text":"a"}]},{"role":"user","content":"again"}],"x_unknown":{"n":1.50}}"#;
    let r = send(
        "POST",
        &h.url("/v1/messages"),
        &[
            ("authorization", "Bearer test-token"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
        Bytes::from(raw),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let seen = &h.fake.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-upstream"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert!(
        seen.header("authorization").is_none(),
        "the caller's token never goes upstream"
    );
    let sent = serde_json::to_string(&seen.body).unwrap();
    let want: Value = serde_json::from_str(&raw.replace("\"claude\"", "\"claude-up\"")).unwrap();
    assert_eq!(seen.body, want);
    assert!(sent.contains("EqQBCkYIBxgCKkD1.0e10/+x=="));
    let o = h.outcome().await;
    let u = o.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.cached_input_tokens, u.output_tokens),
        (100, 60, 7)
    );
}

#[tokio::test]
async fn passthrough_stream_taps_usage_and_clamps_max_tokens() {
    let mut h = start().await;
    h.fake.enqueue(Script {
        text: Some("one two".into()),
        usage: Some(ScriptUsage {
            input: 20,
            output: 2,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    });
    let mut body = ask("claude", true);
    body["max_tokens"] = json!(32000);
    let r = messages(&h, &body, &[]).await;
    let evs = events(&r);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert_eq!(
        h.fake.requests()[0].body["max_tokens"],
        8192,
        "clamped to the target's max_output_tokens"
    );
    let o = h.outcome().await;
    assert_eq!(
        o.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((20, 2))
    );
    assert!(
        o.warnings.iter().any(|w| w.contains("clamped")),
        "{:?}",
        o.warnings
    );
}

#[tokio::test]
async fn messages_to_chat_upstream_non_stream_with_tool_use() {
    let mut h = start().await;
    h.fake.enqueue(Script {
        tool_calls: vec![ToolCall {
            name: "get_weather".into(),
            arguments: Some(json!({"city": "Paris"})),
        }],
        usage: Some(ScriptUsage {
            input: 50,
            output: 9,
            cached: 20,
            reasoning: 0,
        }),
        ..Script::default()
    });
    let body = json!({
        "model": "gpt", "max_tokens": 300, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}],
        "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"], "temperature": 0.5, "top_k": 5,
        "metadata": {"user_id": "user-1"},
    });
    let r = messages(&h, &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["type"], "message");
    assert_eq!(m["model"], "gpt");
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["content"][0]["type"], "tool_use");
    assert_eq!(m["content"][0]["input"], json!({"city": "Paris"}));
    assert_eq!(
        m["usage"]["input_tokens"], 30,
        "Anthropic input excludes cache reads"
    );
    assert_eq!(m["usage"]["cache_read_input_tokens"], 20);
    let up = &h.fake.requests()[0].body;
    assert_eq!(up["model"], "gpt-up");
    assert_eq!(
        up["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        up["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(up["tool_choice"], "required");
    assert_eq!(up["parallel_tool_calls"], false);
    assert_eq!(up["stop"], json!(["END"]));
    assert_eq!(up["user"], "user-1");
    assert_eq!(up["max_tokens"], 300);
    assert!(up.get("top_k").is_none());
    let o = h.outcome().await;
    assert!(
        o.warnings.iter().any(|w| w == "top_k dropped"),
        "{:?}",
        o.warnings
    );
    assert!(
        o.warnings.iter().any(|w| w == "cache_control dropped"),
        "{:?}",
        o.warnings
    );

    // The next turn: the tool result goes back with the same id.
    let id = m["content"][0]["id"].as_str().unwrap().to_string();
    let turn2 = json!({"model": "gpt", "max_tokens": 300, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": m["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "sunny", "is_error": false}]}]});
    let r = messages(&h, &turn2, &[]).await;
    assert_eq!(r.status, 200);
    let up = &h.fake.requests()[1].body;
    assert_eq!(up["messages"][1]["tool_calls"][0]["id"], id);
    assert_eq!(
        up["messages"][2],
        json!({"role": "tool", "tool_call_id": id, "content": "sunny"})
    );
}

#[tokio::test]
async fn messages_to_chat_upstream_stream_has_the_full_event_sequence() {
    let mut h = start().await;
    h.fake.enqueue(Script {
        tool_calls: vec![
            ToolCall {
                name: "a".into(),
                arguments: Some(json!({"x": 1})),
            },
            ToolCall {
                name: "b".into(),
                arguments: Some(json!({"y": "two"})),
            },
        ],
        usage: Some(ScriptUsage {
            input: 11,
            output: 5,
            ..ScriptUsage::default()
        }),
        ..Script::default()
    });
    let mut body = ask("gpt", true);
    body["tools"] = json!([{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {"type": "object"}}]);
    let r = messages(&h, &body, &[]).await;
    let evs = events(&r);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let starts: Vec<&Value> = evs
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        (starts[0]["index"].as_u64(), starts[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(starts[1]["content_block"]["name"], "b");
    for i in [0u64, 1] {
        let args: String = evs
            .iter()
            .filter(|(n, v)| n == "content_block_delta" && v["index"] == i)
            .map(|(_, v)| v["delta"]["partial_json"].as_str().unwrap().to_string())
            .collect();
        let want = if i == 0 {
            json!({"x": 1})
        } else {
            json!({"y": "two"})
        };
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), want);
    }
    // Every block is stopped before the next starts.
    let mut open = None;
    for (n, v) in &evs {
        match n.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "block opened while another is open");
                open = v["index"].as_u64();
            }
            "content_block_stop" => {
                assert_eq!(open, v["index"].as_u64());
                open = None;
            }
            _ => {}
        }
    }
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 5);
    assert_eq!(
        h.fake.requests()[0].body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(h.outcome().await.usage.map(|u| u.input_tokens), Some(11));
}

#[tokio::test]
async fn chat_client_to_anthropic_upstream() {
    let mut h = start().await;
    h.fake.enqueue(Script {
        text: Some("bonjour".into()),
        usage: Some(ScriptUsage {
            input: 40,
            output: 3,
            cached: 10,
            reasoning: 0,
        }),
        ..Script::default()
    });
    let r = h
        .chat(&json!({"model": "claude", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}],
            "max_tokens": 99, "stop": "STOP", "temperature": 1.7}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "claude");
    assert_eq!(c["choices"][0]["message"]["content"], "bonjour");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["prompt_tokens"], 40);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
    let up = &h.fake.requests()[0].body;
    assert_eq!(up["system"], "sys");
    assert_eq!(up["max_tokens"], 99);
    assert_eq!(up["stop_sequences"], json!(["STOP"]));
    assert_eq!(up["temperature"], 1.0);
    assert_eq!(
        up["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})
    );
    let o = h.outcome().await;
    assert!(
        o.warnings.iter().any(|w| w.contains("temperature")),
        "{:?}",
        o.warnings
    );
}

#[tokio::test]
async fn chat_client_to_anthropic_upstream_streams_tool_calls_with_stable_indices() {
    let h = start().await;
    h.fake.enqueue(Script {
        tool_calls: vec![
            ToolCall {
                name: "a".into(),
                arguments: Some(json!({"q": "first call"})),
            },
            ToolCall {
                name: "b".into(),
                arguments: Some(json!({"q": "second"})),
            },
        ],
        ..Script::default()
    });
    let tools = json!([{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
                       {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}]);
    let r = h.chat(&json!({"model": "claude", "stream": true, "tools": tools, "messages": [{"role": "user", "content": "go"}]})).await;
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in &chunks {
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.push((
                    tc["id"].as_str().unwrap().into(),
                    tc["function"]["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            }
            calls[i]
                .2
                .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].1.as_str(), calls[1].1.as_str()), ("a", "b"));
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"q": "first call"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].2).unwrap(),
        json!({"q": "second"})
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage chunk unless asked"
    );
}

#[tokio::test]
async fn chat_json_schema_to_anthropic_uses_a_forced_tool() {
    let h = start().await;
    let r = h
        .chat(&json!({"model": "claude", "messages": [{"role": "user", "content": "weather"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    let content: Value =
        serde_json::from_str(c["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"city": "example"}));
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    let up = &h.fake.requests()[0].body;
    assert_eq!(
        up["tool_choice"],
        json!({"type": "tool", "name": "structured_response"})
    );
}

#[tokio::test]
async fn errors_come_in_anthropic_shape() {
    let h = start().await;
    let url = h.url("/v1/messages");
    let r = send(
        "POST",
        &url,
        &[("anthropic-version", "2023-06-01")],
        Bytes::from(ask("claude", false).to_string()),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": r.json()["error"]["message"]}})
    );
    let r = messages(&h, &ask("nope", false), &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"]["type"].clone()),
        (404, json!("not_found_error"))
    );
    let mut no_max = ask("claude", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let r = messages(&h, &no_max, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    // An upstream 529 with Retry-After cools the only target: the caller gets 529 overloaded
    // with Retry-After (Claude Code retries on it).
    h.fake.enqueue(Script {
        status: Some(529),
        error: Some("Overloaded".into()),
        headers: [("retry-after".into(), "4".into())].into(),
        ..Script::default()
    });
    let r = messages(&h, &ask("claude", false), &[]).await;
    assert_eq!(
        r.status.as_u16(),
        529,
        "upstream 529 after the last attempt: {}",
        r.text()
    );
    assert_eq!(r.header("retry-after"), Some("4"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 529")
    );
    let r = messages(&h, &ask("claude", false), &[]).await;
    assert_eq!(r.status.as_u16(), 529);
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn fallback_from_anthropic_to_chat_and_mid_stream_errors() {
    let h = start().await;
    h.fake.enqueue(Script {
        status: Some(529),
        ..Script::default()
    });
    let r = messages(&h, &ask("mixed", false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-router-target"), Some("oai/gpt-second"));
    assert_eq!(r.json()["type"], "message");
    h.fake.enqueue(Script {
        text: Some("a b c d e".into()),
        close_after_events: Some(4),
        chunk_delay_ms: 20,
        ..Script::default()
    });
    let r = messages(&h, &ask("gpt", true), &[]).await;
    let evs = events(&r);
    let (name, data) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
}

#[tokio::test]
async fn count_tokens_passes_through_or_estimates() {
    let h = start().await;
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hello, how are you today?"}]});
    let r = send(
        "POST",
        &h.url("/v1/messages/count_tokens"),
        &[("x-api-key", "test-token")],
        Bytes::from(body.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-router-token-count"), Some("upstream"));
    assert_eq!(h.fake.requests()[0].path, "/v1/messages/count_tokens");
    assert_eq!(h.fake.requests()[0].body["model"], "claude-up");
    let body = json!({"model": "gpt", "system": "You are terse.", "messages": [{"role": "user", "content": "Hello, how are you today?"}]});
    let r = send(
        "POST",
        &h.url("/v1/messages/count_tokens"),
        &[("x-api-key", "test-token")],
        Bytes::from(body.to_string()),
    )
    .await;
    assert_eq!(r.header("x-router-token-count"), Some("estimate"));
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!(
        (8..=20).contains(&n),
        "BPE count of ~11 text tokens plus framing: {n}"
    );
    assert_eq!(h.fake.requests().len(), 1, "estimates ask no upstream");
}

/// Issue 12: count_tokens left no usage record, waited a hard-coded 30 s on the upstream, and
/// its local estimate answered 200 to malformed messages.
#[tokio::test]
async fn issue_12_count_tokens_is_recorded_budgeted_and_validated() {
    let mut h = start().await;
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "Hello there"}]});
    // Passed through by splicing `model`, not through a JSON tree: `1.50` stays `1.50`.
    let raw = r#"{"model":"claude","x_vendor":{"weight":1.50},"messages":[{"role":"user","content":"Hello there"}]}"#;
    let r = send(
        "POST",
        &h.url("/v1/messages/count_tokens"),
        &[("x-api-key", "test-token")],
        Bytes::from(raw),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.fake.requests()[0].raw_body(),
        raw.replace("\"claude\"", "\"claude-up\"")
    );
    let o = h.outcome().await;
    assert_eq!(o.surface, "anthropic_count_tokens");
    assert_eq!((o.http_status, o.error_kind), (200, None));
    assert_eq!(o.caller.as_deref(), Some("app"));
    assert_eq!(o.attempts.len(), 1);
    assert_eq!(&*o.attempts[0].model, "claude-up");
    // A slow upstream count is abandoned when the caller's budget runs out, and estimated.
    h.fake.enqueue(Script {
        delay_ms: 3_000,
        ..Script::default()
    });
    let started = std::time::Instant::now();
    let r = send(
        "POST",
        &h.url("/v1/messages/count_tokens"),
        &[("x-api-key", "test-token"), ("x-router-timeout-ms", "300")],
        Bytes::from(body.to_string()),
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_millis(2_000));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-router-token-count"), Some("estimate"));
    let o = h.outcome().await;
    assert_eq!(o.attempts[0].outcome, "timeout");
    // The local estimate refuses what the Messages API refuses.
    for bad in [
        json!({"model": "gpt", "messages": [{"role": "user", "content": 5}]}),
        json!({"model": "gpt", "messages": [{"role": "robot", "content": "x"}]}),
        json!({"model": "gpt", "messages": [{"content": "x"}]}),
        json!({"model": "gpt", "messages": [{"role": "user", "content": [{"text": "untyped"}]}]}),
    ] {
        let r = send(
            "POST",
            &h.url("/v1/messages/count_tokens"),
            &[("x-api-key", "test-token")],
            Bytes::from(bad.to_string()),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        let o = h.outcome().await;
        assert_eq!(o.http_status, 400);
    }
}

#[tokio::test]
async fn models_in_anthropic_shape_and_hello() {
    let h = start().await;
    let r = send(
        "GET",
        &h.url("/v1/models"),
        &[
            ("x-api-key", "test-token"),
            ("anthropic-version", "2023-06-01"),
        ],
        Bytes::new(),
    )
    .await;
    let v = r.json();
    assert_eq!(v["has_more"], false);
    assert_eq!(v["first_id"], "claude");
    assert_eq!(v["last_id"], "mixed");
    assert_eq!(v["data"][0]["type"], "model");
    assert!(v["data"][0]["display_name"].is_string() && v["data"][0]["created_at"].is_string());
    let r = send("HEAD", &h.url("/api/hello"), &[], Bytes::new()).await;
    assert_eq!(r.status, 200);
}
