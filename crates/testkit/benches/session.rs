//! The cost of the gateway's session ids: sealing (AES-256-GCM, on `initialize`) and opening
//! (on every later request), for a typical two-target session.
//!
//! `cargo bench -p agw-testkit --bench session`

use std::hint::black_box;

use agw_mcp::session::{SessionCodec, SessionState, TargetSession};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn state() -> SessionState {
    SessionState {
        targets: vec![
            TargetSession { name: "files".into(), session: Some("7c9e6679-7425-40de-944b-e07fc1f90ae7".into()) },
            TargetSession { name: "search".into(), session: Some("f47ac10b-58cc-4372-a567-0e02b2c3d479".into()) },
        ],
        backend: "bind0/listener0/route0/backend0".into(),
        init: Some(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}},
            "clientInfo": {"name": "claude-code", "version": "2.0.14"}
        })),
        nonce: SessionState::new_nonce(),
        // An authenticated caller's 128-bit identity digest, as the gateway writes it.
        owner: "q2rF0xV7mPz4bW9cLk1nTg".into(),
        version: None,
    }
}

fn session_ids(c: &mut Criterion) {
    let sealed = SessionCodec::sealed("3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b").unwrap();
    let plain = SessionCodec::plain();
    let s = state();
    let sealed_id = sealed.encode(&s);
    let plain_id = plain.encode(&s);
    println!("session id: {} bytes sealed, {} bytes plain", sealed_id.len(), plain_id.len());
    c.bench_function("seal a two-target session id", |b| b.iter(|| sealed.encode(black_box(&s))));
    c.bench_function("open a two-target session id", |b| b.iter(|| sealed.decode(black_box(&sealed_id)).unwrap()));
    c.bench_function("encode a two-target session id (no key)", |b| b.iter(|| plain.encode(black_box(&s))));
    c.bench_function("decode a two-target session id (no key)", |b| {
        b.iter(|| plain.decode(black_box(&plain_id)).unwrap())
    });
}

criterion_group!(benches, session_ids);
criterion_main!(benches);
