//! AFL++ entry point of the `jsonrpc` fuzz target (`agw_fuzz::jsonrpc`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::jsonrpc(data));
}
