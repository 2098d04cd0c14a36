//! What each identity provider needs: where its metadata, keys and registration endpoint are
//! (all derived from the configured issuer, never from a request or from fetched documents),
//! and how its metadata is adapted before MCP clients see it.

use agw_config::model::McpProvider;
use http::Uri;
use serde_json::{Map, Value, json};

/// An issuer URL taken apart: `scheme://authority` and the path (without a trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub origin: String,
    pub path: String,
}

impl Issuer {
    /// Parses an `http`/`https` issuer; `None` for anything else (an `iss` that is not a URL).
    pub fn parse(issuer: &str) -> Option<Issuer> {
        let uri: Uri = issuer.parse().ok()?;
        let scheme = uri.scheme_str().filter(|s| matches!(*s, "http" | "https"))?;
        let authority = uri.authority()?;
        if authority.as_str().contains('@') || uri.query().is_some() {
            return None;
        }
        Some(Issuer { origin: format!("{scheme}://{authority}"), path: uri.path().trim_end_matches('/').to_string() })
    }

    /// The issuer again, without a trailing slash.
    pub fn base(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }

    fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// Descope's agentic issuer `/v1/apps/agentic/<project>/<server>`: (project, server).
    fn descope_ids(&self) -> Option<(&str, &str)> {
        match self.segments()[..] {
            ["v1", "apps", "agentic", project, server, ..] => Some((project, server)),
            _ => None,
        }
    }
}

/// Where the provider's metadata document is fetched from.
pub fn metadata_url(provider: Option<McpProvider>, issuer: &Issuer) -> Result<String, String> {
    Ok(match provider {
        // RFC 8414: the well-known segment goes before the issuer's path.
        None | Some(McpProvider::Auth0 {}) => {
            format!("{}/.well-known/oauth-authorization-server{}", issuer.origin, issuer.path)
        }
        // These serve OpenID Connect discovery only, appended to the issuer.
        Some(McpProvider::Keycloak {} | McpProvider::Okta {} | McpProvider::Descope {} | McpProvider::Authentik {}) => {
            format!("{}/.well-known/openid-configuration", issuer.base())
        }
        // Always the v2.0 document, whichever token version the issuer names.
        Some(McpProvider::Entra {}) => Entra::from_issuer(issuer)?.openid_configuration,
    })
}

/// Where the provider's keys are when `jwks` is not configured.
pub fn default_jwks_url(provider: Option<McpProvider>, issuer: &str) -> Result<String, String> {
    let parsed = Issuer::parse(issuer);
    let trimmed = issuer.trim_end_matches('/');
    Ok(match (provider, &parsed) {
        (Some(McpProvider::Keycloak {}), _) => format!("{trimmed}/protocol/openid-connect/certs"),
        (Some(McpProvider::Authentik {}), _) => format!("{trimmed}/jwks/"),
        (Some(McpProvider::Entra {}), Some(i)) => Entra::from_issuer(i)?.jwks_uri,
        (Some(McpProvider::Entra {}), None) => return Err(entra_issuer_error(issuer)),
        (Some(McpProvider::Descope {}), Some(i)) if i.descope_ids().is_some() => {
            let (project, _) = i.descope_ids().unwrap_or_default();
            format!("{}/{project}/.well-known/jwks.json", i.origin)
        }
        _ => format!("{trimmed}/.well-known/jwks.json"),
    })
}

/// Where registration requests are proxied when no `clientId` is configured; `Err` says why
/// the provider cannot register clients (the operator must configure `clientId`).
pub fn registration_url(provider: Option<McpProvider>, issuer: &Issuer) -> Result<String, &'static str> {
    match provider {
        None | Some(McpProvider::Keycloak {} | McpProvider::Auth0 {}) => {
            Ok(format!("{}/clients-registrations/openid-connect", issuer.base()))
        }
        Some(McpProvider::Okta {}) => Ok(format!("{}/oauth2/v1/clients", issuer.origin)),
        Some(McpProvider::Descope {}) => match issuer.descope_ids() {
            Some((project, server)) => Ok(format!("{}/v1/mgmt/mcp/client/{project}/{server}/register", issuer.origin)),
            None => Err(
                "Descope registration needs an agentic issuer (/v1/apps/agentic/<project>/<server>); set `clientId`",
            ),
        },
        Some(McpProvider::Authentik {}) => Err("authentik has no dynamic client registration; set `clientId`"),
        Some(McpProvider::Entra {}) => Err("Entra ID has no dynamic client registration; set `clientId`"),
    }
}

/// A Microsoft Entra tenant's endpoints, from a v1 (`https://sts.windows.net/<tenant>/`) or
/// v2 (`https://login.microsoftonline.com/<tenant>/v2.0`) issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entra {
    pub openid_configuration: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

impl Entra {
    pub fn from_issuer(issuer: &Issuer) -> Result<Entra, String> {
        let (scheme, host) = issuer.origin.split_once("://").unwrap_or(("https", ""));
        let Some(tenant) = issuer.segments().first().map(|s| s.to_string()) else {
            return Err(entra_issuer_error(&issuer.base()));
        };
        // v1 tokens name sts.windows.net; the interactive endpoints are on the login host.
        // Other hosts (national clouds) are used as the issuer names them.
        let authority = if host.eq_ignore_ascii_case("sts.windows.net") {
            format!("https://login.microsoftonline.com/{tenant}")
        } else {
            format!("{scheme}://{host}/{tenant}")
        };
        Ok(Entra {
            openid_configuration: format!("{authority}/v2.0/.well-known/openid-configuration"),
            authorization_endpoint: format!("{authority}/oauth2/v2.0/authorize"),
            token_endpoint: format!("{authority}/oauth2/v2.0/token"),
            jwks_uri: format!("{authority}/discovery/v2.0/keys"),
        })
    }
}

fn entra_issuer_error(issuer: &str) -> String {
    format!(
        "`{issuer}` is not an Entra issuer (expected https://login.microsoftonline.com/<tenant>/v2.0 or https://sts.windows.net/<tenant>/)"
    )
}

/// How the gateway is addressed for one metadata request.
#[derive(Debug, Clone)]
pub struct Served {
    /// The URL the metadata was requested at; the gateway's own endpoints go beneath it.
    pub metadata_url: String,
    /// The gateway as authorization server: `scheme://host<resource path>`.
    pub issuer: String,
}

/// The adaptations, applied to a copy of the provider's document. Fails when the document
/// lacks what the provider's adaptation needs.
pub fn rewrite(
    provider: Option<McpProvider>,
    audience: Option<&str>,
    doc: &mut Map<String, Value>,
    served: &Served,
) -> Result<(), &'static str> {
    let own = |endpoint: &str| Value::String(format!("{}/{endpoint}", served.metadata_url));
    match provider {
        None => return Ok(()),
        Some(McpProvider::Auth0 {}) => add_audience(doc, audience)?,
        Some(McpProvider::Okta {}) => {
            add_audience(doc, audience)?;
            replace_if_present(doc, "registration_endpoint", own("client-registration"));
        }
        Some(McpProvider::Descope {}) => replace_if_present(doc, "registration_endpoint", own("client-registration")),
        Some(McpProvider::Keycloak {}) => {
            if !doc.get("registration_endpoint").is_some_and(Value::is_string) {
                return Err("the provider's metadata has no registration_endpoint");
            }
            doc.insert("registration_endpoint".into(), own("client-registration"));
        }
        Some(McpProvider::Authentik {}) => {
            doc.insert("registration_endpoint".into(), own("client-registration"));
        }
        Some(McpProvider::Entra {}) => {
            for key in ["authorization_endpoint", "token_endpoint"] {
                if !doc.get(key).is_some_and(Value::is_string) {
                    return Err("the provider's metadata lacks authorization_endpoint or token_endpoint");
                }
            }
            doc.insert("authorization_endpoint".into(), own("authorize"));
            doc.insert("token_endpoint".into(), own("token"));
            doc.insert("registration_endpoint".into(), own("client-registration"));
            // Entra does PKCE with S256 but does not say so; MCP clients require it said.
            doc.entry("code_challenge_methods_supported").or_insert_with(|| json!(["S256"]));
        }
    }
    // With a provider the gateway is the authorization server clients were sent to
    // (`authorization_servers` in the resource metadata), and RFC 8414 §3.3 has clients
    // check that the document names the issuer they asked.
    doc.insert("issuer".into(), Value::String(served.issuer.clone()));
    Ok(())
}

fn replace_if_present(doc: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(v) = doc.get_mut(key) {
        *v = value;
    }
}

/// `audience=<first audience>` on the authorization endpoint, for providers without RFC 8707.
fn add_audience(doc: &mut Map<String, Value>, audience: Option<&str>) -> Result<(), &'static str> {
    let Some(Value::String(endpoint)) = doc.get_mut("authorization_endpoint") else {
        return Err("the provider's metadata has no authorization_endpoint");
    };
    if let Some(aud) = audience {
        let encoded: String = form_urlencoded::byte_serialize(aud.as_bytes()).collect();
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        endpoint.push_str(&format!("{sep}audience={encoded}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: Option<McpProvider> = Some(McpProvider::Keycloak {});
    const ENTRA: Option<McpProvider> = Some(McpProvider::Entra {});

    fn issuer(s: &str) -> Issuer {
        Issuer::parse(s).unwrap()
    }

    fn served() -> Served {
        Served {
            metadata_url: "http://gw:3000/.well-known/oauth-authorization-server/mcp".into(),
            issuer: "http://gw:3000/mcp".into(),
        }
    }

    fn doc(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { panic!("not an object") };
        m
    }

    #[test]
    fn issuers_must_be_plain_http_urls() {
        assert_eq!(issuer("https://idp.example/realms/a/").base(), "https://idp.example/realms/a");
        assert_eq!(issuer("http://127.0.0.1:9000").path, "");
        for bad in ["agentgateway.dev", "ftp://idp", "https://user:pw@idp", "https://idp/?x=1", ""] {
            assert!(Issuer::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn metadata_locations() {
        let i = issuer("https://idp.example/tenant1");
        assert_eq!(
            metadata_url(None, &i).unwrap(),
            "https://idp.example/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(
            metadata_url(Some(McpProvider::Auth0 {}), &issuer("https://x.auth0.com/")).unwrap(),
            "https://x.auth0.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url(KC, &issuer("http://kc:7080/realms/mcp")).unwrap(),
            "http://kc:7080/realms/mcp/.well-known/openid-configuration"
        );
        assert_eq!(
            metadata_url(ENTRA, &issuer("https://sts.windows.net/t-1/")).unwrap(),
            "https://login.microsoftonline.com/t-1/v2.0/.well-known/openid-configuration"
        );
        assert!(metadata_url(ENTRA, &issuer("https://login.microsoftonline.com/")).is_err());
        assert_eq!(
            metadata_url(ENTRA, &issuer("https://login.microsoftonline.us/t-3/v2.0")).unwrap(),
            "https://login.microsoftonline.us/t-3/v2.0/.well-known/openid-configuration",
            "national clouds keep their host"
        );
    }

    #[test]
    fn jwks_defaults() {
        let d = |p, i| default_jwks_url(p, i).unwrap();
        assert_eq!(d(None, "https://idp/"), "https://idp/.well-known/jwks.json");
        assert_eq!(
            d(Some(McpProvider::Okta {}), "https://o/oauth2/default"),
            "https://o/oauth2/default/.well-known/jwks.json"
        );
        assert_eq!(d(KC, "http://kc/realms/r"), "http://kc/realms/r/protocol/openid-connect/certs");
        assert_eq!(
            d(Some(McpProvider::Authentik {}), "https://a/application/o/app/"),
            "https://a/application/o/app/jwks/"
        );
        assert_eq!(
            d(Some(McpProvider::Descope {}), "https://api.descope.com/v1/apps/agentic/P1/S1"),
            "https://api.descope.com/P1/.well-known/jwks.json"
        );
        assert_eq!(d(Some(McpProvider::Descope {}), "https://d/other"), "https://d/other/.well-known/jwks.json");
        assert_eq!(
            d(ENTRA, "https://login.microsoftonline.com/t-2/v2.0"),
            "https://login.microsoftonline.com/t-2/discovery/v2.0/keys"
        );
        assert!(default_jwks_url(ENTRA, "not a url").is_err());
    }

    #[test]
    fn registration_targets() {
        let r = |p, i: &str| registration_url(p, &issuer(i));
        assert_eq!(r(KC, "http://kc/realms/r/").unwrap(), "http://kc/realms/r/clients-registrations/openid-connect");
        assert_eq!(
            r(Some(McpProvider::Okta {}), "https://o.okta.com/oauth2/default").unwrap(),
            "https://o.okta.com/oauth2/v1/clients"
        );
        assert_eq!(
            r(Some(McpProvider::Descope {}), "https://api.descope.com/v1/apps/agentic/P/S").unwrap(),
            "https://api.descope.com/v1/mgmt/mcp/client/P/S/register"
        );
        assert!(r(Some(McpProvider::Descope {}), "https://api.descope.com/P").is_err());
        assert!(r(Some(McpProvider::Authentik {}), "https://a/application/o/x/").is_err());
        assert!(r(ENTRA, "https://login.microsoftonline.com/t/v2.0").is_err());
    }

    #[test]
    fn keycloak_registration_goes_through_the_gateway() {
        let mut d = doc(json!({"issuer": "http://kc/realms/r", "registration_endpoint": "http://kc/reg", "x": 1}));
        rewrite(KC, None, &mut d, &served()).unwrap();
        assert_eq!(
            d["registration_endpoint"],
            "http://gw:3000/.well-known/oauth-authorization-server/mcp/client-registration"
        );
        assert_eq!(d["issuer"], "http://gw:3000/mcp");
        assert_eq!(d["x"], 1, "other fields stay");
        let mut none = doc(json!({"issuer": "http://kc"}));
        assert!(rewrite(KC, None, &mut none, &served()).is_err());
    }

    #[test]
    fn without_a_provider_the_document_is_unchanged() {
        let original = doc(json!({"issuer": "https://idp", "registration_endpoint": "https://idp/reg"}));
        let mut d = original.clone();
        rewrite(None, Some("aud"), &mut d, &served()).unwrap();
        assert_eq!(d, original);
    }

    #[test]
    fn auth0_and_okta_get_the_audience() {
        let mut d =
            doc(json!({"authorization_endpoint": "https://x/authorize", "registration_endpoint": "https://x/reg"}));
        rewrite(Some(McpProvider::Auth0 {}), Some("urn:a b"), &mut d, &served()).unwrap();
        assert_eq!(d["authorization_endpoint"], "https://x/authorize?audience=urn%3Aa+b");
        assert_eq!(d["registration_endpoint"], "https://x/reg", "auth0 registers directly");
        let mut d = doc(
            json!({"authorization_endpoint": "https://o/v1/authorize?x=1", "registration_endpoint": "https://o/reg"}),
        );
        rewrite(Some(McpProvider::Okta {}), Some("api://default"), &mut d, &served()).unwrap();
        assert_eq!(d["authorization_endpoint"], "https://o/v1/authorize?x=1&audience=api%3A%2F%2Fdefault");
        assert!(d["registration_endpoint"].as_str().unwrap().ends_with("/mcp/client-registration"));
        let mut bad = doc(json!({"authorization_endpoint": 7}));
        assert!(rewrite(Some(McpProvider::Auth0 {}), Some("a"), &mut bad, &served()).is_err());
    }

    #[test]
    fn authentik_and_entra_get_gateway_endpoints() {
        let mut d = doc(json!({"issuer": "https://a/application/o/x/"}));
        rewrite(Some(McpProvider::Authentik {}), None, &mut d, &served()).unwrap();
        assert!(d["registration_endpoint"].as_str().unwrap().ends_with("/mcp/client-registration"));

        let mut d = doc(json!({"authorization_endpoint": "https://login/a", "token_endpoint": "https://login/t"}));
        rewrite(ENTRA, None, &mut d, &served()).unwrap();
        let base = "http://gw:3000/.well-known/oauth-authorization-server/mcp";
        assert_eq!(d["authorization_endpoint"], format!("{base}/authorize"));
        assert_eq!(d["token_endpoint"], format!("{base}/token"));
        assert_eq!(d["registration_endpoint"], format!("{base}/client-registration"));
        assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
        let mut kept = doc(
            json!({"authorization_endpoint": "a", "token_endpoint": "t", "code_challenge_methods_supported": ["S256", "plain"]}),
        );
        rewrite(ENTRA, None, &mut kept, &served()).unwrap();
        assert_eq!(kept["code_challenge_methods_supported"], json!(["S256", "plain"]));
        assert!(rewrite(ENTRA, None, &mut doc(json!({"token_endpoint": "t"})), &served()).is_err());
    }
}
