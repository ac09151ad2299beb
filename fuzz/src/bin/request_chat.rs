//! Fuzz target: `request` in dialect `chat` (see `smart_router_fuzz::request`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::request(dialects::Dialect::OpenAiChat, data);
    });
}
