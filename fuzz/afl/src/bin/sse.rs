//! AFL++ entry point of the `sse` fuzz target (`agw_fuzz::sse`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::sse(data));
}
