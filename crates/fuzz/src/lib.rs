//! Fuzz targets: one plain function per parser of untrusted input. Each takes arbitrary
//! bytes, must never panic, hang or allocate without bound, and asserts the invariants of what
//! it drives (a failed assertion is a finding, like a crash).
//!
//! The same functions run three ways: under AFL++ (`fuzz/afl`, outside the workspace), in the
//! smoke test (`tests/smoke.rs`: the committed corpus plus deterministic mutations, part of
//! `cargo test`), and one input at a time with `agw-fuzz-replay <target> <file>…`.
//! See docs/fuzzing.md.

mod config;
mod jsonrpc;
mod jwt;
mod oauth;
mod openapi;
mod path;
mod policy_answer;
mod sse;

pub use config::config;
pub use jsonrpc::jsonrpc;
pub use jwt::jwt;
pub use oauth::oauth;
pub use openapi::openapi;
pub use path::path;
pub use policy_answer::policy_answer;
pub use sse::sse;

/// A fuzz target: bytes in, panics out.
pub type Target = fn(&[u8]);

/// Every target by name (the name is also its corpus folder and its AFL binary).
pub const TARGETS: &[(&str, Target)] = &[
    ("jwt", jwt),
    ("jsonrpc", jsonrpc),
    ("sse", sse),
    ("config", config),
    ("path", path),
    ("oauth", oauth),
    ("openapi", openapi),
    ("policy_answer", policy_answer),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
