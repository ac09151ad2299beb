//! The OpenAI Responses surface (Codex's dialect): passthrough to `openai-responses` upstreams,
//! translation to Chat and Anthropic upstreams and back, and the other clients reaching an
//! `openai-responses` upstream.

mod common;

use bytes::Bytes;
use common::{Harness, send};
use fake_upstream::{Script, ScriptUsage, ToolCall};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
[providers.resp]
kind = "openai-responses"
base_url = "FAKE"
api_key = "sk-resp"
[providers.chat]
kind = "openai"
base_url = "FAKE"
[providers.ant]
kind = "anthropic"
base_url = "FAKE_ROOT"
[groups.r]
[[groups.r.targets]]
provider = "resp"
model = "up-r"
capabilities = ["tools", "images", "json_schema", "reasoning"]
[groups.c]
[[groups.c.targets]]
provider = "chat"
model = "up-c"
capabilities = ["tools", "images", "json_schema", "reasoning"]
[groups.a]
[[groups.a.targets]]
provider = "ant"
model = "up-a"
capabilities = ["tools", "images", "json_schema", "reasoning"]
[[callers]]
name = "app"
groups = ["*"]
token = "test-token"
"#;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../dialects/tests/fixtures/openai_responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn responses(h: &Harness, body: &[u8]) -> common::Resp {
    send(
        "POST",
        &h.url("/v1/responses"),
        &[("authorization", "Bearer test-token")],
        Bytes::copy_from_slice(body),
    )
    .await
}

fn with_group(body: &[u8], group: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    v["model"] = json!(group);
    serde_json::to_vec(&v).unwrap()
}

fn events(r: &common::Resp) -> Vec<Value> {
    r.sse_data()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Sequence numbers increase by one; the stream starts with created/in_progress and ends with
/// a terminal event; every added item is done with the same output index.
fn assert_well_formed(evs: &[Value]) {
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
        assert!(e["type"].is_string());
    }
    assert_eq!(evs[0]["type"], "response.created");
    assert_eq!(evs[1]["type"], "response.in_progress");
    let last = evs.last().unwrap()["type"].as_str().unwrap();
    assert!(
        matches!(
            last,
            "response.completed" | "response.incomplete" | "response.failed"
        ),
        "{last}"
    );
    let added: Vec<u64> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_item.added")
        .map(|e| e["output_index"].as_u64().unwrap())
        .collect();
    let done: Vec<u64> = evs
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| e["output_index"].as_u64().unwrap())
        .collect();
    assert_eq!(added, done);
    assert_eq!(added, (0..added.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn codex_turn_passes_through_to_a_responses_upstream() {
    let mut h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        text: Some("ok".into()),
        usage: Some(ScriptUsage {
            input: 900,
            output: 12,
            cached: 512,
            reasoning: 4,
        }),
        ..Script::default()
    });
    let body = with_group(&fixture("codex_first_turn.json"), "r");
    let r = send(
        "POST",
        &h.url("/v1/responses"),
        &[
            ("authorization", "Bearer test-token"),
            ("session-id", "sess-9"),
            (
                "x-codex-turn-metadata",
                "{\"installation_id\":\"secret-install\"}",
            ),
        ],
        Bytes::from(body.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let evs = events(&r);
    assert_well_formed(&evs);
    let seen = &h.fake.requests()[0];
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(seen.header("authorization"), Some("Bearer sk-resp"));
    assert!(
        seen.header("x-codex-turn-metadata").is_none(),
        "client metadata headers stay at the router"
    );
    let mut want: Value = serde_json::from_slice(&body).unwrap();
    want["model"] = json!("up-r");
    assert_eq!(seen.body, want, "only model changes");
    let o = h.outcome().await;
    let u = o.usage.unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cached_input_tokens,
            u.output_tokens,
            u.reasoning_tokens
        ),
        (900, 512, 12, 4)
    );
}

#[tokio::test]
async fn codex_turns_translate_to_chat() {
    let mut h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        tool_calls: vec![ToolCall {
            name: "exec_command".into(),
            arguments: Some(json!({"cmd": "ls"})),
        }],
        ..Script::default()
    });
    let r = responses(&h, &with_group(&fixture("codex_first_turn.json"), "c")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let evs = events(&r);
    assert_well_formed(&evs);
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(done["item"]["type"], "function_call");
    assert_eq!(done["item"]["name"], "exec_command");
    assert_eq!(done["item"]["arguments"], "{\"cmd\":\"ls\"}");
    assert!(done["item"]["call_id"].as_str().unwrap().len() > 3);
    let args: String = evs
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(args, "{\"cmd\":\"ls\"}");
    let up = &h.fake.requests()[0].body;
    assert_eq!(
        up["messages"][0]["role"], "system",
        "developer messages become the system prompt"
    );
    let names: Vec<&str> = up["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"exec_command") && names.contains(&"multi_agent_v1__spawn_agent"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("web_search")));
    let o = h.outcome().await;
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("hosted tool web_search dropped")),
        "{:?}",
        o.warnings
    );

    // The next turn carries the call and its output: they become a tool call and a tool message.
    let r = responses(
        &h,
        &with_group(&fixture("codex_tool_output_turn.json"), "c"),
    )
    .await;
    assert_eq!(r.status, 200);
    let up = &h.fake.requests()[1].body;
    let msgs = up["messages"].as_array().unwrap();
    let call = msgs.iter().find(|m| m["tool_calls"].is_array()).unwrap();
    let out = msgs.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(call["tool_calls"][0]["id"], out["tool_call_id"]);
    assert_eq!(call["tool_calls"][0]["function"]["name"], "exec_command");
}

#[tokio::test]
async fn responses_to_anthropic_with_custom_and_namespaced_tools() {
    let h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        tool_calls: vec![
            ToolCall {
                name: "apply_patch".into(),
                arguments: Some(json!({"input": "*** Begin Patch\n*** End Patch"})),
            },
            ToolCall {
                name: "agents__spawn".into(),
                arguments: Some(json!({"task": "x"})),
            },
        ],
        ..Script::default()
    });
    let body = json!({
        "model": "a", "stream": false, "store": false,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "patch it"}]}],
        "tools": [
            {"type": "custom", "name": "apply_patch", "description": "Apply a patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
            {"type": "namespace", "name": "agents", "description": "sub-agents", "tools": [
                {"type": "function", "name": "spawn", "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}}]},
            {"type": "web_search"}
        ],
    });
    let r = responses(&h, body.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    let out = v["output"].as_array().unwrap();
    assert_eq!(out[0]["type"], "custom_tool_call");
    assert_eq!(out[0]["name"], "apply_patch");
    assert_eq!(out[0]["input"], "*** Begin Patch\n*** End Patch");
    assert_eq!(out[1]["type"], "function_call");
    assert_eq!(
        (out[1]["namespace"].as_str(), out[1]["name"].as_str()),
        (Some("agents"), Some("spawn"))
    );
    let up = &h.fake.requests()[0].body;
    let tools: Vec<&str> = up["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["apply_patch", "agents__spawn"]);
    assert_eq!(up["tools"][0]["input_schema"]["required"], json!(["input"]));
    // The custom call and its output round-trip on the next turn.
    let next = json!({
        "model": "a", "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "patch it"}]},
            out[0].clone(),
            {"type": "custom_tool_call_output", "call_id": out[0]["call_id"], "output": "applied"}],
        "tools": body["tools"],
    });
    let r = responses(&h, next.to_string().as_bytes()).await;
    assert_eq!(r.status, 200);
    let up = &h.fake.requests()[1].body;
    let msgs = up["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(
        msgs[1]["content"][0]["input"],
        json!({"input": "*** Begin Patch\n*** End Patch"})
    );
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(
        msgs[2]["content"][0]["tool_use_id"],
        msgs[1]["content"][0]["id"]
    );
}

#[tokio::test]
async fn streamed_custom_tool_call_from_a_chat_upstream() {
    let h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        tool_calls: vec![ToolCall {
            name: "apply_patch".into(),
            arguments: Some(json!({"input": "line \"one\"\nline two"})),
        }],
        ..Script::default()
    });
    let body = json!({"model": "c", "stream": true, "input": "patch",
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Apply a patch"}]});
    let r = responses(&h, body.to_string().as_bytes()).await;
    let evs = events(&r);
    assert_well_formed(&evs);
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.custom_tool_call_input.done")
        .unwrap();
    assert_eq!(done["input"], "line \"one\"\nline two");
    let item = evs
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(item["item"]["type"], "custom_tool_call");
    let completed = evs.last().unwrap();
    assert_eq!(
        completed["response"]["output"][0]["type"],
        "custom_tool_call"
    );
    assert!(
        completed["response"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn text_stream_from_anthropic_and_incomplete_on_max_tokens() {
    let h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        text: Some("hello there world".into()),
        ..Script::default()
    });
    let body = json!({"model": "a", "stream": true, "input": [{"role": "user", "content": "hi"}], "instructions": "be brief", "max_output_tokens": 50});
    let r = responses(&h, body.to_string().as_bytes()).await;
    let evs = events(&r);
    assert_well_formed(&evs);
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let want = [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    assert_eq!(types[..4], want);
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "hello there world");
    let done = evs
        .iter()
        .find(|e| e["type"] == "response.output_text.done")
        .unwrap();
    assert_eq!(done["text"], "hello there world");
    let up = &h.fake.requests()[0].body;
    assert_eq!(
        (up["system"].as_str(), up["max_tokens"].as_u64()),
        (Some("be brief"), Some(50))
    );
}

#[tokio::test]
async fn previous_response_id_only_reaches_responses_upstreams() {
    let h = Harness::with_config(CONFIG).await;
    let body = |g: &str| {
        json!({"model": g, "input": "continue", "previous_response_id": "resp_123", "store": true})
            .to_string()
    };
    let r = responses(&h, body("c").as_bytes()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "previous_response_id");
    assert!(h.fake.requests().is_empty());
    let r = responses(&h, body("r").as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        h.fake.requests()[0].body["previous_response_id"],
        "resp_123"
    );
}

#[tokio::test]
async fn chat_and_messages_clients_reach_a_responses_upstream() {
    let mut h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        tool_calls: vec![ToolCall {
            name: "get_weather".into(),
            arguments: Some(json!({"city": "Oslo"})),
        }],
        usage: Some(ScriptUsage {
            input: 30,
            output: 6,
            cached: 10,
            reasoning: 2,
        }),
        ..Script::default()
    });
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let r = h.chat(&json!({"model": "r", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "w?"}], "tools": tools, "reasoning_effort": "low"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(
        c["usage"]["completion_tokens_details"]["reasoning_tokens"],
        2
    );
    let up = &h.fake.requests()[0].body;
    assert_eq!(up["instructions"], "s");
    assert_eq!(
        up["input"][0],
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "w?"}]})
    );
    assert_eq!(up["reasoning"]["effort"], "low");
    assert_eq!(up["store"], false);
    assert_eq!(h.outcome().await.usage.unwrap().cached_input_tokens, 10);

    let r = send(
        "POST",
        &h.url("/v1/messages"),
        &[("x-api-key", "test-token"), ("anthropic-version", "2023-06-01")],
        Bytes::from(json!({"model": "r", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string()),
    )
    .await;
    let text = r.text();
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(text.contains("event: message_stop"));
}

#[tokio::test]
async fn websocket_upgrade_is_refused_fast() {
    let h = Harness::with_config(CONFIG).await;
    let r = send(
        "GET",
        &h.url("/v1/responses"),
        &[
            ("authorization", "Bearer test-token"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 426);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("supports_websockets = false")
    );
}

#[tokio::test]
async fn broken_upstream_mid_stream_ends_with_response_failed() {
    let h = Harness::with_config(CONFIG).await;
    h.fake.enqueue(Script {
        text: Some("a b c d e f".into()),
        close_after_events: Some(4),
        chunk_delay_ms: 20,
        ..Script::default()
    });
    let r = responses(
        &h,
        json!({"model": "c", "stream": true, "input": "hi"})
            .to_string()
            .as_bytes(),
    )
    .await;
    let evs = events(&r);
    assert_well_formed(&evs);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert!(
        last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off")
    );
}
