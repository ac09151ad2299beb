//! Fuzz target: `stream` in dialect `chat` (see `smart_router_fuzz::stream`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::stream(dialects::Dialect::OpenAiChat, data);
    });
}
