//! AFL++ entry point of the `path` fuzz target (`agw_fuzz::path`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::path(data));
}
