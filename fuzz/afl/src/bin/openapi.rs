//! AFL++ entry point of the `openapi` fuzz target (`agw_fuzz::openapi`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::openapi(data));
}
