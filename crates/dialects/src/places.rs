//! What every dialect's `text` module shares: the [`Slot`] a text place is handed out as, and
//! helpers to walk parsed bodies. A leaf: it knows no dialect.

use serde_json::Value;

/// One place text lives.
#[derive(Debug)]
pub enum Slot<'a> {
    /// Plain text (a prompt, a message, an answer, a tool result).
    Text(&'a mut String),
    /// A string that holds JSON text (a tool call's arguments): a rewrite must leave it valid
    /// JSON when it was.
    JsonText(&'a mut String),
    /// A JSON value (Anthropic `tool_use.input`): its string leaves are text.
    Json(&'a mut Value),
}

/// `v` as a string slot of kind `slot`, when it is a string.
pub(crate) fn string<'a>(
    v: Option<&'a mut Value>,
    slot: fn(&'a mut String) -> Slot<'a>,
    visit: &mut dyn FnMut(Slot<'_>),
) {
    if let Some(Value::String(s)) = v {
        visit(slot(s));
    }
}

/// Text given either as a string or as an array of typed parts whose text parts (of a type in
/// `text_types`) carry `text`.
pub(crate) fn string_or_parts(
    v: Option<&mut Value>,
    text_types: &[&str],
    visit: &mut dyn FnMut(Slot<'_>),
) {
    match v {
        Some(Value::String(s)) => visit(Slot::Text(s)),
        Some(Value::Array(parts)) => {
            for p in parts {
                let is_text = p
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| text_types.contains(&t));
                if is_text {
                    string(p.get_mut("text"), Slot::Text, visit);
                }
            }
        }
        _ => {}
    }
}

/// The array under `key`, or nothing.
pub(crate) fn items<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .map(|a| a.iter_mut())
        .into_iter()
        .flatten()
}

/// The `type` of an item.
pub(crate) fn kind(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}
