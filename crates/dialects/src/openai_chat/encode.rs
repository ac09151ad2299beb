//! Encoding Chat Completions bodies: the passthrough's `stream_options` edit and encoding from
//! the canonical model.

use crate::canonical::{
    self, EncodeOptions, FinishReason, Part, ResponseFormat, Role, ToolChoice, Warning,
    clamp_max_tokens,
};
use crate::scan::Inspected;
use serde_json::{Map, Value, json};
use std::ops::Range;

/// The edit that forces `stream_options.include_usage` on a streamed Chat request whose caller
/// did not ask for usage (so the router can record it), if one is needed.
pub fn stream_options_edit(inspected: &Inspected) -> Option<(Range<usize>, String)> {
    if !inspected.summary.stream || inspected.include_usage {
        return None;
    }
    Some(match &inspected.stream_options {
        Some((span, text)) => {
            let mut opts = serde_json::from_str::<Map<String, Value>>(text).unwrap_or_default();
            opts.insert("include_usage".into(), Value::Bool(true));
            (
                span.clone(),
                serde_json::to_string(&opts).expect("a map serialises"),
            )
        }
        None => {
            let at = inspected.object_start + 1;
            (at..at, r#""stream_options":{"include_usage":true},"#.into())
        }
    })
}

/// The Chat `finish_reason` of a canonical finish reason.
pub fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop | FinishReason::StopSequence => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn user_content(parts: &[Part]) -> Value {
    if let [Part::Text(t)] = parts {
        return Value::String(t.clone());
    }
    Value::Array(
        parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(json!({"type": "text", "text": t})),
                Part::Image(src) => {
                    Some(json!({"type": "image_url", "image_url": {"url": src.to_url()}}))
                }
                _ => None,
            })
            .collect(),
    )
}

/// Encodes a canonical request as a Chat request for a target.
pub fn encode_request(
    req: &canonical::Request,
    opts: &EncodeOptions<'_>,
) -> (Vec<u8>, Vec<Warning>) {
    let mut w = Vec::new();
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::System => {
                let text: Vec<&str> = m
                    .parts
                    .iter()
                    .filter_map(|p| {
                        if let Part::Text(t) = p {
                            Some(t.as_str())
                        } else {
                            None
                        }
                    })
                    .collect();
                messages.push(json!({"role": "system", "content": text.join("\n")}));
            }
            Role::User => {
                let mut rest = Vec::new();
                for p in &m.parts {
                    match p {
                        Part::ToolResult {
                            call_id,
                            content,
                            is_error,
                        } => {
                            let mut text: String = content
                                .iter()
                                .filter_map(|c| {
                                    if let Part::Text(t) = c {
                                        Some(t.as_str())
                                    } else {
                                        None
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join("\n");
                            if content.iter().any(|c| matches!(c, Part::Image(_))) {
                                w.push(Warning(
                                    "image in a tool result dropped (Chat tool messages take text)"
                                        .into(),
                                ));
                            }
                            if *is_error {
                                text = format!("Error: {text}");
                            }
                            messages.push(
                                json!({"role": "tool", "tool_call_id": call_id, "content": text}),
                            );
                        }
                        Part::Reasoning { .. } | Part::ToolCall { .. } => {}
                        other => rest.push(other.clone()),
                    }
                }
                if !rest.is_empty() {
                    messages.push(json!({"role": "user", "content": user_content(&rest)}));
                }
            }
            Role::Assistant => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for p in &m.parts {
                    match p {
                        Part::Text(t) => text.push_str(t),
                        Part::ToolCall {
                            id,
                            name,
                            arguments,
                        } => calls.push(json!({
                            "id": id, "type": "function",
                            "function": {"name": name, "arguments": arguments}
                        })),
                        Part::Reasoning { .. } => {
                            w.push(Warning("reasoning from an earlier turn dropped".into()));
                        }
                        _ => {}
                    }
                }
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(opts.model));
    out.insert("messages".into(), Value::Array(messages));
    if req.stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(n) = clamp_max_tokens(req.max_tokens, opts, &mut w) {
        let key = if opts.reasoning {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(key.into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if !req.stop.is_empty() {
        out.insert("stop".into(), json!(req.stop));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(p) = req.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(c) = &req.tool_choice {
        out.insert(
            "tool_choice".into(),
            match c {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(n) => json!({"type": "function", "function": {"name": n}}),
            },
        );
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut js = json!({"name": name, "schema": schema});
            if let Some(s) = strict {
                js["strict"] = json!(s);
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": js}),
            );
        }
        None => {}
    }
    if let Some(r) = &req.reasoning {
        match (opts.reasoning, r.effort_or_from_budget()) {
            (true, Some(e)) => {
                out.insert("reasoning_effort".into(), json!(e));
            }
            _ => w.push(Warning(
                "reasoning settings dropped: the target has no `reasoning` capability".into(),
            )),
        }
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(u.chars().take(64).collect::<String>()));
    }
    (
        serde_json::to_vec(&Value::Object(out)).expect("JSON serialises"),
        w,
    )
}

/// Encodes a canonical response as a Chat completion (`model` is what the caller asked for).
pub fn encode_response(r: &canonical::Response, model: &str, created: u64) -> Vec<u8> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in &r.parts {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": arguments}
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let v = json!({
        "id": r.id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(r.finish), "logprobs": null}],
        "usage": usage_json(&r.usage),
    });
    serde_json::to_vec(&v).expect("JSON serialises")
}

/// Chat `usage` for canonical usage.
pub fn usage_json(u: &canonical::Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    })
}

#[cfg(test)]
mod tests {
    use crate::openai_chat::decode::inspect_request;
    use crate::passthrough::rewrite_request;
    use serde_json::Value;

    fn rewrite(body: &str, model: &str) -> Value {
        let i = inspect_request(body.as_bytes()).unwrap();
        serde_json::from_slice(&rewrite_request(body.as_bytes(), &i, model, None)).unwrap()
    }

    #[test]
    fn rewrites_model_only_and_keeps_unknown_fields() {
        let body = r#"{"model":"coder","messages":[{"role":"user","content":"hi"}],"x_vendor":{"a":[1,2]},"temperature":0.25}"#;
        let i = inspect_request(body.as_bytes()).unwrap();
        let out = rewrite_request(body.as_bytes(), &i, "gpt-5", None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            body.replace("\"coder\"", "\"gpt-5\"")
        );
    }

    #[test]
    fn forces_include_usage_on_streams() {
        let v = rewrite(
            r#"{"model":"c","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            "m",
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
        let v = rewrite(
            r#"{"stream":true,"stream_options":{"x":1},"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
        );
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        assert_eq!(v["model"], "m");
        let v = rewrite(
            r#"{"stream":true,"stream_options":null,"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn leaves_non_streams_alone() {
        let v = rewrite(
            r#"{"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
        );
        assert!(v.get("stream_options").is_none());
    }
}
