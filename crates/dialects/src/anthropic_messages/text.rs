//! Where text lives in Messages bodies (see [`crate::text`]): `system` (a string or `text`
//! blocks), `messages[].content` (a string or blocks: `text.text`, `tool_use.input`,
//! `tool_result.content` as a string or `text` blocks); in answers, `content[]` alike.
//! `thinking` blocks are signed and `redacted_thinking` is encrypted: neither is handed out, nor
//! are `image` and `document` blocks.

use crate::places::{Slot, items, kind, string, string_or_parts};
use serde_json::Value;

/// A request's text places.
pub(crate) fn request(body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    string_or_parts(body.get_mut("system"), &["text"], visit);
    for m in items(body, "messages") {
        match m.get_mut("content") {
            Some(Value::String(s)) => visit(Slot::Text(s)),
            Some(Value::Array(blocks)) => blocks.iter_mut().for_each(|b| block(b, visit)),
            _ => {}
        }
    }
}

/// A whole answer's text places.
pub(crate) fn response(body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    for b in items(body, "content") {
        block(b, visit);
    }
}

fn block(b: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    match kind(b) {
        "text" => string(b.get_mut("text"), Slot::Text, visit),
        "tool_use" | "server_tool_use" => {
            if let Some(input) = b.get_mut("input") {
                visit(Slot::Json(input));
            }
        }
        "tool_result" => string_or_parts(b.get_mut("content"), &["text"], visit),
        _ => {}
    }
}
