//! An identity provider's metadata document as `mcpAuthentication` adapts it
//! (`agw_gateway::oauth::provider::rewrite`): the document is fetched from the provider, so a
//! hostile or broken provider (or whoever sits on the path to it) controls it.

use agw_config::model::McpProvider;
use agw_gateway::oauth::provider::{Served, rewrite};
use serde_json::{Map, Value};

const PROVIDERS: [Option<McpProvider>; 7] = [
    None,
    Some(McpProvider::Auth0 {}),
    Some(McpProvider::Keycloak {}),
    Some(McpProvider::Okta {}),
    Some(McpProvider::Descope {}),
    Some(McpProvider::Authentik {}),
    Some(McpProvider::Entra {}),
];

/// The keys an adaptation may change.
const ADAPTED: [&str; 5] =
    ["issuer", "registration_endpoint", "authorization_endpoint", "token_endpoint", "code_challenge_methods_supported"];

/// Input: a metadata document (JSON; the gateway serves only objects).
///
/// Invariants, for every provider: without one the document is unchanged; with one, an
/// adapted document names the gateway as `issuer`, every endpoint the gateway took over is
/// beneath its metadata URL, the audience is appended to the provider's own authorization
/// endpoint for Auth0 and Okta, no other key changes; a refusal has its cause in the document.
pub fn oauth(data: &[u8]) {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(data) else { return };
    let served = Served {
        metadata_url: "https://gw.example/.well-known/oauth-authorization-server/mcp".into(),
        issuer: "https://gw.example/mcp".into(),
    };
    let own = |v: &Value| v.as_str().is_some_and(|s| s.starts_with(&format!("{}/", served.metadata_url)));
    let text = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    for provider in PROVIDERS {
        let mut out = doc.clone();
        let result = rewrite(provider, Some("api://aud 1"), &mut out, &served);
        let Some(p) = provider else {
            assert!(result.is_ok());
            assert_eq!(out, doc, "without a provider nothing changes");
            continue;
        };
        let had = |k: &str| doc.get(k).is_some_and(Value::is_string);
        if let Err(why) = result {
            let cause = match p {
                McpProvider::Auth0 {} | McpProvider::Okta {} => !had("authorization_endpoint"),
                McpProvider::Keycloak {} => !had("registration_endpoint"),
                McpProvider::Entra {} => !had("authorization_endpoint") || !had("token_endpoint"),
                McpProvider::Descope {} | McpProvider::Authentik {} => false,
            };
            assert!(cause, "{p:?} refused ({why}) without a cause");
            continue;
        }
        assert_eq!(out["issuer"], served.issuer.as_str());
        for (k, v) in &doc {
            if !ADAPTED.contains(&k.as_str()) {
                assert_eq!(out.get(k), Some(v), "{p:?} changed {k}");
            }
        }
        match p {
            McpProvider::Auth0 {} | McpProvider::Okta {} => {
                let (before, after) = (text(&doc, "authorization_endpoint"), text(&out, "authorization_endpoint"));
                let (before, after) = (before.unwrap_or_default(), after.unwrap_or_default());
                assert!(after.starts_with(&before) && after.ends_with("audience=api%3A%2F%2Faud+1"), "{after}");
            }
            McpProvider::Entra {} => {
                for k in ["authorization_endpoint", "token_endpoint", "registration_endpoint"] {
                    assert!(own(&out[k]), "{k}: {}", out[k]);
                }
                assert!(out.contains_key("code_challenge_methods_supported"));
            }
            McpProvider::Keycloak {} | McpProvider::Authentik {} => assert!(own(&out["registration_endpoint"])),
            McpProvider::Descope {} => {}
        }
        if matches!(p, McpProvider::Okta {} | McpProvider::Descope {}) && doc.contains_key("registration_endpoint") {
            assert!(own(&out["registration_endpoint"]), "{p:?}: {}", out["registration_endpoint"]);
        }
    }
}
