//! Where text lives in Responses bodies (see [`crate::text`]): `instructions`, `input` (a
//! string, or items: `message` content as a string or `input_text`/`output_text` parts,
//! `function_call.arguments`, `function_call_output.output`, `custom_tool_call.input`,
//! `custom_tool_call_output.output`); in answers, `output[]` alike. `reasoning` items
//! (encrypted or summarised reasoning), images and files are not handed out.

use crate::places::{Slot, items, kind, string, string_or_parts};
use serde_json::Value;

const TEXT_PARTS: &[&str] = &["input_text", "output_text", "text", "refusal"];

/// A request's text places.
pub(crate) fn request(body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    string(body.get_mut("instructions"), Slot::Text, visit);
    match body.get_mut("input") {
        Some(Value::String(s)) => visit(Slot::Text(s)),
        Some(Value::Array(list)) => list.iter_mut().for_each(|i| item(i, visit)),
        _ => {}
    }
}

/// A whole answer's text places.
pub(crate) fn response(body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    for i in items(body, "output") {
        item(i, visit);
    }
}

fn item(i: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    match kind(i) {
        // An input message may leave out its type.
        "message" | "" => {
            if let Some(Value::String(s)) = i.get_mut("content") {
                visit(Slot::Text(s));
            } else {
                for p in items(i, "content") {
                    if TEXT_PARTS.contains(&crate::places::kind(p)) {
                        string(p.get_mut("text"), Slot::Text, visit);
                        string(p.get_mut("refusal"), Slot::Text, visit);
                    }
                }
            }
        }
        "function_call" => string(i.get_mut("arguments"), Slot::JsonText, visit),
        "custom_tool_call" => string(i.get_mut("input"), Slot::Text, visit),
        "function_call_output" | "custom_tool_call_output" => {
            string_or_parts(i.get_mut("output"), TEXT_PARTS, visit)
        }
        _ => {}
    }
}
