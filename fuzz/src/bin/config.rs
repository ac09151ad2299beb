//! Fuzz target: `config` (see `smart_router_fuzz::config`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        smart_router_fuzz::config(data);
    });
}
