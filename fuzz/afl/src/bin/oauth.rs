//! AFL++ entry point of the `oauth` fuzz target (`agw_fuzz::oauth`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::oauth(data));
}
