//! Where text lives in a body of each dialect, for stages that inspect or rewrite content
//! (PII filtering): every place a prompt, an answer, a tool call's arguments or a tool's result
//! sits, handed to a visitor as a [`Slot`]. Which fields those are is each dialect's own detail
//! (its `text` module); this one only dispatches. Images, files, reasoning (encrypted, or
//! signed: changing it would void the signature) and identifiers are never handed out.

use crate::Dialect;
pub use crate::places::Slot;
use serde_json::Value;

/// Hands every text place of a request body (parsed) of `dialect` to `visit`.
pub fn request_texts(dialect: Dialect, body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    match dialect {
        Dialect::OpenAiChat => crate::openai_chat::text::request(body, visit),
        Dialect::AnthropicMessages => crate::anthropic_messages::text::request(body, visit),
        Dialect::OpenAiResponses => crate::openai_responses::text::request(body, visit),
    }
}

/// Hands every text place of a whole (non-stream) response body (parsed) of `dialect` to
/// `visit`.
pub fn response_texts(dialect: Dialect, body: &mut Value, visit: &mut dyn FnMut(Slot<'_>)) {
    match dialect {
        Dialect::OpenAiChat => crate::openai_chat::text::response(body, visit),
        Dialect::AnthropicMessages => crate::anthropic_messages::text::response(body, visit),
        Dialect::OpenAiResponses => crate::openai_responses::text::response(body, visit),
    }
}
