//! What the fake upstream should do for one request: a script, from the `x-fake-script` header,
//! the queue (`POST /_fake/scripts`), or the default behaviour.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A scripted answer. Every field is optional; what is unset falls back to the default
/// behaviour (a text reply, a tool call when tools are offered, a JSON example for a schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Answer with this HTTP status and an error body in the dialect's shape.
    pub status: Option<u16>,
    /// Message of that error body.
    pub error: Option<String>,
    /// Extra response headers (e.g. `retry-after`).
    pub headers: BTreeMap<String, String>,
    /// Send exactly this body instead (e.g. non-JSON), with `status` or 200.
    pub raw_body: Option<String>,
    /// Reply text.
    pub text: Option<String>,
    /// Stream the text in exactly these pieces.
    pub chunks: Option<Vec<String>>,
    /// Pause before each streamed event.
    pub chunk_delay_ms: u64,
    /// Call these tools instead of answering with text.
    pub tool_calls: Vec<ToolCall>,
    /// Report this usage.
    pub usage: Option<ScriptUsage>,
    /// Wait this long before sending headers.
    pub delay_ms: u64,
    /// Never answer (until the client goes away).
    pub hang: bool,
    /// Break the connection after this many streamed events, without `[DONE]`.
    pub close_after_events: Option<usize>,
    /// Go silent (keep the connection open) after this many streamed events.
    pub stall_after_events: Option<usize>,
    /// Answer a stream (`text/event-stream`) of exactly these pieces, each sent as it is
    /// (whatever the request's dialect), paced by `chunk_delay_ms`.
    pub raw_events: Option<Vec<String>>,
    /// After `raw_events`, send this many bytes of one line that never ends, then go silent.
    pub endless_line_bytes: Option<usize>,
}

/// A scripted tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Tool (function) name.
    pub name: String,
    /// Arguments; default: an example built from the tool's schema.
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// Scripted token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScriptUsage {
    /// Prompt tokens (cached included).
    pub input: u64,
    /// Completion tokens (reasoning included).
    pub output: u64,
    /// Cached prompt tokens.
    pub cached: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
}

/// A JSON value that satisfies `schema` (objects get every property), for tool arguments and
/// structured outputs.
pub fn example_from_schema(schema: &Value) -> Value {
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return example_from_schema(first);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), example_from_schema(v));
                }
            }
            Value::Object(out)
        }
        "array" => Value::Array(vec![example_from_schema(
            schema.get("items").unwrap_or(&Value::Null),
        )]),
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::String("example".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn examples_follow_the_schema() {
        let s = json!({"type":"object","properties":{"city":{"type":"string"},"n":{"type":"integer"},
            "unit":{"enum":["c","f"]},"tags":{"type":"array","items":{"type":"string"}},
            "opt":{"anyOf":[{"type":"number"},{"type":"null"}]}}});
        assert_eq!(
            example_from_schema(&s),
            json!({"city":"example","n":1,"unit":"c","tags":["example"],"opt":1.5})
        );
    }
}
