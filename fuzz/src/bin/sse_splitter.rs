//! Fuzz target: `sse_splitter` (see `smart_router_fuzz::sse_splitter`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::sse_splitter(data);
    });
}
