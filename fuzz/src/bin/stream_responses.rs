//! Fuzz target: `stream` in dialect `responses` (see `smart_router_fuzz::stream`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::stream(dialects::Dialect::OpenAiResponses, data);
    });
}
