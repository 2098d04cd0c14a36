//! AFL++ entry point of the `jwt` fuzz target (`agw_fuzz::jwt`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::jwt(data));
}
