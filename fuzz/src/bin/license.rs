//! Fuzz target: `license` (see `smart_router_fuzz::license`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::license(data);
    });
}
