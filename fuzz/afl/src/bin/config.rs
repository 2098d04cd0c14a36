//! AFL++ entry point of the `config` fuzz target (`agw_fuzz::config`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::config(data));
}
