//! Hot paths of the policies: verifying a JWT, and filtering a long tools/list answer under
//! the tutorial's rules. Run: `cargo bench -p agw-testkit --bench policy`.

use std::hint::black_box;
use std::sync::Arc;

use agw_config::model::{AuditMode, Rule};
use agw_gateway::authz::McpAuthorizer;
use agw_mcp::authz::filter_result;
use agw_policy::jwt::{KeySet, KeyStore, Provider, Validator};
use agw_policy::rules::{Rules, Vars, to_cel};
use agw_testkit::jwt::{self, Alg, TestKey, claims};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const PUB_KEY: &str = include_str!("../../../examples/tutorial/pub-key");
const EXAMPLE1: &str = include_str!("../../../examples/tutorial/example1.key");

fn validator(jwks: &str, iss: &str) -> Validator {
    Validator {
        providers: vec![Provider {
            issuer: iss.into(),
            audiences: vec![],
            required_claims: vec!["exp".into()],
            keys: Arc::new(KeyStore::new(KeySet::parse(jwks).unwrap())),
            clock_skew_secs: 30,
        }],
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn jwt_verify(c: &mut Criterion) {
    let es256 = validator(PUB_KEY, "agentgateway.dev");
    let token = EXAMPLE1.trim();
    c.bench_function("jwt verify ES256 (tutorial token)", |b| {
        b.iter(|| es256.validate(black_box(token), now()).unwrap())
    });
    // What a request with a token seen before pays: a hash and a lookup.
    let cache = agw_policy::jwt::cache::TokenCache::default();
    let generation = es256.key_generation();
    cache.put(&es256, token, &es256.validate(token, now()), now(), generation);
    c.bench_function("jwt ES256, cached (token seen before)", |b| {
        b.iter(|| cache.get(black_box(token), now(), generation).unwrap().unwrap())
    });
    let key = TestKey::generate("rsa", Alg::RS256);
    let rs256 = validator(&jwt::jwks(&[&key], false), "https://idp.test");
    let token = key.token(&claims("https://idp.test", "x"));
    c.bench_function("jwt verify RS256 (2048-bit)", |b| b.iter(|| rs256.validate(black_box(&token), now()).unwrap()));
}

fn tools_list(n: usize) -> Vec<u8> {
    let mut tools: Vec<Value> = (0..n - 3).map(|i| json!({"name": format!("tool-{i}"), "description": "A tool", "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}}})).collect();
    for name in ["echo", "add", "printEnv"] {
        tools.push(json!({"name": name, "description": "A tool", "inputSchema": {"type": "object"}}));
    }
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": tools}})).unwrap()
}

fn list_filtering(c: &mut Criterion) {
    let rules = Rules::compile(&[
        Rule::Allow(r#"mcp.tool.name == "echo""#.into()),
        Rule::Allow(r#"jwt.sub == "test-user" && mcp.tool.name == "add""#.into()),
        Rule::Allow(r#"mcp.tool.name == "printEnv" && jwt.nested.key == "value""#.into()),
    ])
    .unwrap();
    let claims = es256_claims();
    let body = tools_list(1000);
    c.bench_function("filter a 1,000-tool tools/list under the tutorial's rules", |b| {
        b.iter(|| {
            let vars = Vars { jwt: Some(to_cel(&claims)), ..Vars::default() };
            let authz = McpAuthorizer::new(&rules, vars, "test-user".into(), AuditMode::Off, None);
            let mut value: Value = serde_json::from_slice(black_box(&body)).unwrap();
            filter_result(&mut value, "mcp", authz.as_ref());
            let out = serde_json::to_vec(&value).unwrap();
            assert_eq!(value["result"]["tools"].as_array().unwrap().len(), 3);
            out
        })
    });
}

fn es256_claims() -> Value {
    let v = validator(PUB_KEY, "agentgateway.dev");
    Value::Object((*v.validate(EXAMPLE1.trim(), now()).unwrap()).clone())
}

criterion_group!(benches, jwt_verify, list_filtering);
criterion_main!(benches);
