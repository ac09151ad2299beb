//! Golden tests of every translation direction (requests, responses, streams) on realistic
//! fixtures, and round-trip properties through the canonical model.

use bytes::{Bytes, BytesMut};
use dialects::Dialect::{AnthropicMessages as A, OpenAiChat as C, OpenAiResponses as R};
use dialects::canonical::{
    EncodeOptions, Event, FinishReason, Message, Part, Request, Role, Tool, Usage,
};
use dialects::openai_responses::ToolShapes;
use dialects::translate::{self, AnswerContext, StreamDecoder, StreamEncoder};
use dialects::{Dialect, sse};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const OPTS: EncodeOptions<'static> = EncodeOptions {
    model: "upstream-model",
    reasoning: true,
    max_output_tokens: Some(8192),
};

/// Decodes a request of `from` and encodes it for `to`: the upstream body and the warnings.
fn cx(shapes: ToolShapes) -> AnswerContext {
    AnswerContext {
        model: "coder".into(),
        created: 0,
        include_usage: true,
        shapes,
    }
}

fn translate_request(from: Dialect, to: Dialect, body: &[u8]) -> Value {
    let (req, mut warnings) = translate::decode_request(from, body).unwrap();
    let enc = translate::encode_request(to, &req, &OPTS);
    warnings.extend(enc.warnings);
    json!({
        "body": serde_json::from_slice::<Value>(&enc.body).unwrap(),
        "warnings": warnings.into_iter().map(|w| w.0).collect::<Vec<_>>(),
        "structured_tool": enc.structured_tool,
    })
}

#[test]
fn anthropic_multi_turn_tools_to_chat() {
    let out = translate_request(A, C, &fixture("anthropic_messages/multi_turn_tools.json"));
    insta::assert_json_snapshot!(out);
}

#[test]
fn chat_multi_turn_tools_to_anthropic() {
    let out = translate_request(C, A, &fixture("openai_chat/multi_turn_tools.json"));
    insta::assert_json_snapshot!(out);
}

/// Structured output as current Anthropic SDKs send it (`output_config.format`) reaches an
/// OpenAI target as `response_format` and a Responses target as `text.format`.
#[test]
fn anthropic_structured_output_to_chat() {
    let out = translate_request(A, C, &fixture("anthropic_messages/structured_output.json"));
    insta::assert_json_snapshot!(out);
}

#[test]
fn anthropic_structured_output_to_responses() {
    let out = translate_request(A, R, &fixture("anthropic_messages/structured_output.json"));
    insta::assert_json_snapshot!(out);
}

/// The older top-level `output_format` and the current `output_config.format` say the same, and
/// both make the request need a `json_schema` target.
#[test]
fn anthropic_output_format_spellings_agree() {
    let current = fixture("anthropic_messages/structured_output.json");
    let mut legacy: Value = serde_json::from_slice(&current).unwrap();
    let format = legacy["output_config"]["format"].take();
    legacy["output_config"]
        .as_object_mut()
        .unwrap()
        .remove("format");
    legacy["output_format"] = format;
    let legacy = serde_json::to_vec(&legacy).unwrap();
    for to in [C, R] {
        assert_eq!(
            translate_request(A, to, &current)["body"],
            translate_request(A, to, &legacy)["body"]
        );
    }
    for body in [&current, &legacy] {
        let i = dialects::passthrough::inspect_request(A, body).unwrap();
        assert!(i.summary.needs.json_schema);
    }
}

/// The shape of a long agent prompt translated to Chat: roles, tool names, the first user turn,
/// the knobs, the warnings.
fn chat_shape(out: &Value) -> Value {
    let body = &out["body"];
    let msgs = body["messages"].as_array().unwrap();
    let roles: Vec<Value> = msgs.iter().map(|m| m["role"].clone()).collect();
    let tools: Vec<Value> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].clone())
        .collect();
    let user = msgs.iter().find(|m| m["role"] == "user").cloned();
    let knobs: serde_json::Map<String, Value> = body
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "messages" | "tools"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({"roles": roles, "tools": tools, "user": user, "knobs": knobs, "warnings": out["warnings"]})
}

#[test]
fn claude_code_first_turn_to_chat() {
    let out = translate_request(
        A,
        C,
        &fixture("anthropic_messages/claude_code_first_turn.json"),
    );
    insta::assert_json_snapshot!(chat_shape(&out));
}

#[test]
fn codex_first_turn_to_chat() {
    let out = translate_request(R, C, &fixture("openai_responses/codex_first_turn.json"));
    insta::assert_json_snapshot!(chat_shape(&out));
}

#[test]
fn codex_first_turn_to_anthropic() {
    let out = translate_request(R, A, &fixture("openai_responses/codex_first_turn.json"));
    let body = &out["body"];
    let tools: Vec<Value> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    let knobs: serde_json::Map<String, Value> = body
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "messages" | "tools" | "system"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let roles: Vec<Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].clone())
        .collect();
    insta::assert_json_snapshot!(
        json!({"roles": roles, "tools": tools, "knobs": knobs, "warnings": out["warnings"]})
    );
}

#[test]
fn codex_tool_output_turn_round_trips_through_anthropic() {
    let out = translate_request(
        R,
        A,
        &fixture("openai_responses/codex_tool_output_turn.json"),
    );
    let msgs = out["body"]["messages"].as_array().unwrap();
    let blocks: Vec<&Value> = msgs
        .iter()
        .flat_map(|m| m["content"].as_array().unwrap())
        .collect();
    let call = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
    let result = blocks.iter().find(|b| b["type"] == "tool_result").unwrap();
    assert_eq!(call["id"], result["tool_use_id"]);
    assert_eq!(call["name"], "exec_command");
}

#[test]
fn chat_response_to_responses() {
    let r = translate::decode_response(C, &chat_response()).unwrap();
    let out: Value = serde_json::from_slice(&translate::encode_response(
        R,
        &r,
        &cx(ToolShapes::default()),
    ))
    .unwrap();
    insta::assert_json_snapshot!(out);
}

#[test]
fn responses_stream_to_chat_and_anthropic() {
    let sse_bytes = fixture("openai_responses/stream_reasoning_text_call.sse");
    insta::assert_snapshot!(
        "responses_stream_to_chat",
        translate_stream(R, C, &sse_bytes, 4096)
    );
    insta::assert_snapshot!(
        "responses_stream_to_anthropic",
        translate_stream(R, A, &sse_bytes, 4096)
    );
}

#[test]
fn anthropic_stream_to_responses() {
    let out = translate_stream(
        A,
        R,
        &fixture("anthropic_messages/stream_thinking_text_tool.sse"),
        4096,
    );
    insta::assert_snapshot!(out);
}

#[test]
fn claude_code_tool_result_turn_round_trips_through_chat() {
    // Claude Code -> Chat upstream -> next turn: tool ids and results survive.
    let (req, _) = translate::decode_request(
        A,
        &fixture("anthropic_messages/claude_code_tool_result_turn.json"),
    )
    .unwrap();
    let chat = translate::encode_request(C, &req, &OPTS);
    let back = serde_json::from_slice::<Value>(&chat.body).unwrap();
    let msgs = back["messages"].as_array().unwrap();
    let call = msgs.iter().find(|m| m["tool_calls"].is_array()).unwrap();
    let result = msgs.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(call["tool_calls"][0]["id"], result["tool_call_id"]);
    assert_eq!(call["tool_calls"][0]["function"]["name"], "Write");
}

fn chat_response() -> Vec<u8> {
    json!({"id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-up",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 64}}})
    .to_string()
    .into_bytes()
}

#[test]
fn chat_response_to_anthropic() {
    let r = translate::decode_response(C, &chat_response()).unwrap();
    let out: Value = serde_json::from_slice(&translate::encode_response(
        A,
        &r,
        &cx(ToolShapes::default()),
    ))
    .unwrap();
    insta::assert_json_snapshot!(out);
}

#[test]
fn anthropic_response_to_chat() {
    let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "Running."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5, "output_tokens": 7}});
    let r = translate::decode_response(A, body.to_string().as_bytes()).unwrap();
    assert_eq!(
        (
            r.usage.input_tokens,
            r.usage.cached_input_tokens,
            r.usage.cache_write_tokens
        ),
        (45, 30, 5)
    );
    let out: Value = serde_json::from_slice(&translate::encode_response(
        C,
        &r,
        &cx(ToolShapes::default()),
    ))
    .unwrap();
    insta::assert_json_snapshot!(out);
}

/// Runs an SSE fixture of `from` through decoder and encoder for `to`, in chunks of `chunk`.
fn translate_stream(from: Dialect, to: Dialect, sse_bytes: &[u8], chunk: usize) -> String {
    let mut splitter = sse::Splitter::new(1 << 20);
    let mut dec = StreamDecoder::new(from, None);
    let mut enc = StreamEncoder::new(to, cx(ToolShapes::default()));
    let mut events = Vec::new();
    let mut out = BytesMut::new();
    for piece in sse_bytes.chunks(chunk) {
        let run = splitter.push(Bytes::copy_from_slice(piece)).unwrap();
        for (_, frame) in sse::frames(&run) {
            if let Some(data) = sse::frame_data(frame) {
                dec.decode(&data, &mut events).unwrap();
            }
        }
        for ev in events.drain(..) {
            enc.encode(&ev, &mut out);
        }
    }
    dec.end(&mut events);
    for ev in events.drain(..) {
        enc.encode(&ev, &mut out);
    }
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn chat_stream_to_anthropic() {
    let out = translate_stream(
        C,
        A,
        &fixture("openai_chat/stream_text_and_tools.sse"),
        4096,
    );
    insta::assert_snapshot!(out);
}

#[test]
fn anthropic_stream_to_chat() {
    let out = translate_stream(
        A,
        C,
        &fixture("anthropic_messages/stream_thinking_text_tool.sse"),
        4096,
    );
    insta::assert_snapshot!(out);
}

#[test]
fn anthropic_stream_error_to_chat() {
    let out = translate_stream(A, C, &fixture("anthropic_messages/stream_error.sse"), 4096);
    insta::assert_snapshot!(out);
}

proptest! {
    /// However the upstream bytes are chunked, the translated stream is the same.
    #[test]
    fn stream_translation_ignores_chunking(chunk in 1usize..300) {
        let whole = translate_stream(C, A, &fixture("openai_chat/stream_text_and_tools.sse"), 1 << 20);
        prop_assert_eq!(translate_stream(C, A, &fixture("openai_chat/stream_text_and_tools.sse"), chunk), whole);
        let whole = translate_stream(A, C, &fixture("anthropic_messages/stream_thinking_text_tool.sse"), 1 << 20);
        prop_assert_eq!(translate_stream(A, C, &fixture("anthropic_messages/stream_thinking_text_tool.sse"), chunk), whole);
        let whole = translate_stream(R, A, &fixture("openai_responses/stream_reasoning_text_call.sse"), 1 << 20);
        prop_assert_eq!(translate_stream(R, A, &fixture("openai_responses/stream_reasoning_text_call.sse"), chunk), whole);
    }
}

/// Canonical requests both dialects can express exactly.
fn requests() -> impl Strategy<Value = Request> {
    let id = "[a-z][a-z0-9_]{0,12}";
    let text = "[ -~]{1,40}";
    let args = proptest::collection::btree_map("[a-z]{1,6}", "[a-z ]{0,8}", 0..3)
        .prop_map(|m| serde_json::to_string(&m).unwrap());
    let call = (id, "[a-z_]{1,10}", args).prop_map(|(id, name, arguments)| Part::ToolCall {
        id,
        name,
        arguments,
    });
    let turn = (
        proptest::collection::vec(text, 1..3),
        proptest::collection::vec(call, 0..3),
        any::<bool>(),
    );
    (
        proptest::collection::vec(turn, 1..4),
        "[ -~]{1,30}",
        proptest::option::of(1u32..4000),
    )
        .prop_map(|(turns, system, max_tokens)| {
            let mut messages = Vec::new();
            let mut pending: Vec<String> = Vec::new();
            for (texts, calls, error) in turns {
                if !pending.is_empty() {
                    let results = pending
                        .drain(..)
                        .map(|call_id| Part::ToolResult {
                            call_id,
                            content: vec![Part::Text("ok".into())],
                            is_error: error,
                        })
                        .collect();
                    messages.push(Message {
                        role: Role::User,
                        parts: results,
                    });
                } else {
                    messages.push(Message {
                        role: Role::User,
                        parts: vec![Part::Text(texts.join(" "))],
                    });
                }
                let mut parts = vec![Part::Text(texts[0].clone())];
                let mut seen = std::collections::HashSet::new();
                for c in calls {
                    if let Part::ToolCall { id, .. } = &c {
                        if !seen.insert(id.clone()) {
                            continue;
                        }
                        pending.push(id.clone());
                    }
                    parts.push(c);
                }
                messages.push(Message {
                    role: Role::Assistant,
                    parts,
                });
            }
            Request {
                model: "upstream-model".into(),
                system: vec![system],
                messages,
                tools: vec![Tool {
                    name: "t".into(),
                    description: Some("d".into()),
                    parameters: json!({"type": "object"}),
                    ..Tool::default()
                }],
                max_tokens,
                ..Request::default()
            }
        })
}

fn round_trip(d: Dialect, req: &Request) -> Request {
    let opts = EncodeOptions {
        model: "upstream-model",
        reasoning: false,
        max_output_tokens: None,
    };
    let enc = translate::encode_request(d, req, &opts);
    translate::decode_request(d, &enc.body).unwrap().0
}

proptest! {
    #[test]
    fn canonical_round_trips_through_anthropic(req in requests()) {
        // Anthropic requires max_tokens: the encoder fills in its default.
        let mut want = req.clone();
        want.max_tokens = Some(req.max_tokens.unwrap_or(8192));
        prop_assert_eq!(round_trip(A, &req), want);
    }

    #[test]
    fn canonical_round_trips_through_responses(req in requests()) {
        // Responses function outputs have no error flag either (folded into the text).
        let mut want = req.clone();
        for m in &mut want.messages {
            for p in &mut m.parts {
                if let Part::ToolResult { content, is_error, .. } = p {
                    if *is_error {
                        *content = vec![Part::Text("Error: ok".into())];
                        *is_error = false;
                    }
                }
            }
        }
        prop_assert_eq!(round_trip(R, &req), want);
    }

    #[test]
    fn canonical_round_trips_through_chat(req in requests()) {
        // Chat tool messages have no error flag: the encoder folds it into the text.
        let mut want = req.clone();
        for m in &mut want.messages {
            for p in &mut m.parts {
                if let Part::ToolResult { content, is_error, .. } = p {
                    if *is_error {
                        *content = vec![Part::Text("Error: ok".into())];
                        *is_error = false;
                    }
                }
            }
        }
        prop_assert_eq!(round_trip(C, &req), want);
    }
}

#[test]
fn usage_and_finish_survive_stream_translation() {
    let mut dec = StreamDecoder::new(A, None);
    let mut evs = Vec::new();
    for (_, f) in sse::frames(&fixture("anthropic_messages/stream_thinking_text_tool.sse")) {
        if let Some(d) = sse::frame_data(f) {
            dec.decode(&d, &mut evs).unwrap();
        }
    }
    let mut usage = Usage::default();
    for e in &evs {
        if let Event::Usage(u) = e {
            usage.merge(*u);
        }
    }
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens
        ),
        (100, 40, 42)
    );
    assert!(matches!(
        evs.last(),
        Some(Event::Finish {
            reason: FinishReason::ToolCalls,
            ..
        })
    ));
}
