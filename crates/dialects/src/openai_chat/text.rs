//! Where text lives in Chat Completions bodies (see [`crate::text`]): `messages[].content`
//! (a string or `text` parts; `refusal` too), `tool_calls[].function.arguments` and the legacy
//! `function_call.arguments`; in answers, `choices[].message` alike. `image_url`, `input_audio`
//! and `file` parts are not text.

use crate::places::{Slot, items, string, string_or_parts};
use serde_json::Value;

const TEXT_PARTS: &[&str] = &["text", "refusal"];

/// A request's text places.
pub(crate) fn request(body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    for m in items(body, "messages") {
        message(m, visit);
    }
}

/// A whole answer's text places.
pub(crate) fn response(body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    for c in items(body, "choices") {
        if let Some(m) = c.get_mut("message") {
            message(m, visit);
        }
    }
}

fn message(m: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    string_or_parts(m.get_mut("content"), TEXT_PARTS, visit);
    string(m.get_mut("refusal"), Slot::Text, visit);
    for call in items(m, "tool_calls") {
        if let Some(f) = call.get_mut("function") {
            string(f.get_mut("arguments"), Slot::JsonText, visit);
        }
    }
    if let Some(f) = m.get_mut("function_call") {
        string(f.get_mut("arguments"), Slot::JsonText, visit);
    }
}
