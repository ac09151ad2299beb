//! Fuzz target: `response` in dialect `responses` (see `smart_router_fuzz::response`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::response(dialects::Dialect::OpenAiResponses, data);
    });
}
