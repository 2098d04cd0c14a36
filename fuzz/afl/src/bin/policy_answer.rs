//! AFL++ entry point of the `policy_answer` fuzz target (`agw_fuzz::policy_answer`).

fn main() {
    afl::fuzz!(|data: &[u8]| agw_fuzz::policy_answer(data));
}
