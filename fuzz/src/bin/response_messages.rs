//! Fuzz target: `response` in dialect `messages` (see `smart_router_fuzz::response`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::response(dialects::Dialect::AnthropicMessages, data);
    });
}
