//! Backend and MCP target `policies`.

use super::Validator;
use crate::error::FieldPath;
use crate::model::{
    ActorTokenSpec, BackendAuth, BackendPolicies, ClientAuth, ClientAuthMethod, CredentialLocation, CrossAppAccess,
    CrossAppEndpoint, GrantType, OauthTokenExchange, RAW_TOKEN_EXPRESSIONS, RESERVED_PARAMS, TOKEN_TYPES, TokenSpec,
};

impl Validator {
    pub(super) fn backend_policies(&mut self, at: &FieldPath, p: &BackendPolicies, target: bool) {
        self.unsupported(at, p.unsupported());
        if target {
            for name in p.backend_only() {
                self.err(at.key(name), "not on an MCP target (agentgateway takes it on backends only)");
            }
        }
        self.header_modifiers(at, &p.request_header_modifier, &p.response_header_modifier);
        if let Some(b) = &p.backend_auth {
            let at = at.key("backendAuth");
            self.backend_auth(&at, b);
            if b.passthrough.is_some() {
                self.err(at.key("passthrough"), "not supported yet on backends and MCP targets (set it on the route)");
            }
            if target {
                for (name, set) in [
                    ("oauthTokenExchange", b.oauth_token_exchange.is_some()),
                    ("crossAppAccess", b.cross_app_access.is_some()),
                ] {
                    if set {
                        self.err(at.key(name), "not supported yet on MCP targets (set it on the route or the backend)");
                    }
                }
            }
        }
        if let Some(t) = &p.backend_tls {
            self.backend_tls(&at.key("backendTLS"), t);
        }
        if let Some(g) = &p.mcp_guardrails
            && !target
        {
            self.mcp_guardrails(&at.key("mcpGuardrails"), g);
        }
    }
}

impl Validator {
    /// One kind (`passthrough`, `key`, …) at most, `credentials` with any; a `{file}` is read
    /// when the gateway is built.
    pub(super) fn backend_auth(&mut self, at: &FieldPath, b: &BackendAuth) {
        self.unsupported(at, b.unsupported());
        let kinds = usize::from(b.passthrough.is_some())
            + usize::from(b.key.is_some())
            + usize::from(b.jwt_sign.is_some())
            + usize::from(b.oauth_token_exchange.is_some())
            + usize::from(b.cross_app_access.is_some())
            + b.unsupported().count();
        let credentials = b.credentials.as_ref();
        if kinds > 1 {
            self.err(
                at.clone(),
                "one kind of backend auth at a time (`passthrough`, `key`, …; `credentials` may go with any)",
            );
        } else if kinds == 0 && credentials.is_none_or(|c| c.is_empty()) {
            self.err(at.clone(), "needs a kind (`passthrough`, `key`) or `credentials`");
        }
        if let Some(t) = &b.oauth_token_exchange {
            self.token_exchange(&at.key("oauthTokenExchange"), t);
        }
        if let Some(x) = &b.cross_app_access {
            self.cross_app_access(&at.key("crossAppAccess"), x);
        }
    }
}

impl Validator {
    fn token_exchange(&mut self, at: &FieldPath, t: &OauthTokenExchange) {
        self.token_endpoint(at, t.host.as_deref(), t.backend.as_deref(), t.service.is_some(), t.path.as_deref());
        if let Some(p) = &t.policies {
            self.endpoint_policies(&at.key("policies"), p);
        }
        let jwt_bearer = t.grant_type == Some(GrantType::JwtBearer);
        if let Some(s) = &t.subject_token {
            self.token_spec(&at.key("subjectToken"), s);
        }
        if let Some(a) = &t.actor_token {
            self.actor_token(&at.key("actorToken"), a, jwt_bearer);
        }
        if let Some(r) = &t.requested_token_type {
            let at = at.key("requestedTokenType");
            if jwt_bearer {
                self.err(at, "only with `grantType: tokenExchange`");
            } else if r.ends_with(":id-jag") {
                self.err(at, "an ID-JAG is requested by `crossAppAccess`, not here");
            } else if !TOKEN_TYPES.contains(&r.as_str()) {
                self.err(at, format!("`{r}` is not a token type (`urn:ietf:params:oauth:token-type:access_token`, `…:jwt`, `…:id_token`, …)"));
            }
        }
        if let Some(c) = &t.client_auth {
            self.client_auth(&at.key("clientAuth"), c);
        }
        for name in t.additional_params.keys() {
            if RESERVED_PARAMS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                self.err(at.key("additionalParams").key(name), format!("`{name}` is set by the exchange itself"));
            }
        }
        if let Some(CredentialLocation::Expression(_)) = &t.authorization_location {
            self.err(at.key("authorizationLocation"), "an expression reads a token; it cannot place one");
        }
        self.scopes(at, &t.scopes);
    }

    fn cross_app_access(&mut self, at: &FieldPath, x: &CrossAppAccess) {
        for (name, e) in [
            ("identityProvider", &x.identity_provider),
            ("resourceAuthorizationServer", &x.resource_authorization_server),
        ] {
            self.cross_app_endpoint(&at.key(name), e);
        }
        if x.audience.trim().is_empty() {
            self.err(at.key("audience"), "the resource authorization server's identifier is required");
        }
        if let Some(s) = &x.subject_token {
            self.token_spec(&at.key("subjectToken"), s);
            if s.token_type.as_deref().is_some_and(|t| t.ends_with(":id-jag")) {
                self.err(at.key("subjectToken").key("tokenType"), "the caller's token cannot be an ID-JAG");
            }
        }
        self.scopes(at, &x.scopes);
        if let Some(s) = &x.access_token_scopes {
            self.scopes(&at.key("accessTokenScopes"), s);
        }
    }

    fn cross_app_endpoint(&mut self, at: &FieldPath, e: &CrossAppEndpoint) {
        self.token_endpoint(at, e.host.as_deref(), e.backend.as_deref(), e.service.is_some(), e.path.as_deref());
        if let Some(p) = &e.policies {
            self.endpoint_policies(&at.key("policies"), p);
        }
        self.client_auth(&at.key("clientAuth"), &e.client_auth);
    }

    /// `host` (`host:port` or `https://host[:port]`) and `path` of a token endpoint.
    fn token_endpoint(
        &mut self,
        at: &FieldPath,
        host: Option<&str>,
        backend: Option<&str>,
        service: bool,
        path: Option<&str>,
    ) {
        if service {
            self.err(at.key("service"), "not supported yet: use `host`");
        }
        if backend.is_some() {
            self.err(at.key("backend"), "not supported yet for a token endpoint: use `host`");
        }
        match host {
            Some(h) => {
                let plain = h.strip_prefix("https://").map(|r| r.trim_end_matches('/'));
                let ok = match plain {
                    Some(rest) => {
                        !rest.is_empty()
                            && !rest.contains(['/', '?', '#', '@'])
                            && (!rest.contains(':') || super::check_host_port(rest).is_ok())
                    }
                    None => super::check_host_port(h).is_ok(),
                };
                if !ok {
                    self.err(at.key("host"), format!("`{h}` is not `host:port` or `https://host[:port]`"));
                }
            }
            None if backend.is_none() && !service => self.err(at.clone(), "needs `host`: the token endpoint's server"),
            None => {}
        }
        if let Some(p) = path
            && !p.is_empty()
            && !p.starts_with('/')
        {
            self.err(at.key("path"), format!("`{p}` must start with `/`"));
        }
    }

    /// Policies of calls to a token endpoint: `backendTLS` (and header changes) only.
    fn endpoint_policies(&mut self, at: &FieldPath, p: &BackendPolicies) {
        self.backend_policies(at, p, false);
        if p.backend_auth.is_some() {
            self.err(at.key("backendAuth"), "not on a token endpoint (use `clientAuth`)");
        }
        if p.response_header_modifier.is_some() {
            self.err(at.key("responseHeaderModifier"), "not on a token endpoint");
        }
    }

    fn token_spec(&mut self, at: &FieldPath, s: &TokenSpec) {
        if let Some(loc) = &s.source {
            self.token_source(&at.key("source"), loc);
        }
        if let Some(t) = &s.token_type {
            self.token_type(&at.key("tokenType"), t);
        }
    }

    fn actor_token(&mut self, at: &FieldPath, a: &ActorTokenSpec, jwt_bearer: bool) {
        if jwt_bearer {
            self.err(at.clone(), "only with `grantType: tokenExchange`");
        }
        self.token_source(&at.key("source"), &a.source);
        if let Some(t) = &a.token_type {
            self.token_type(&at.key("tokenType"), t);
        }
        if a.enforce_may_act == Some(true) && a.token_type.as_deref() != Some("urn:ietf:params:oauth:token-type:jwt") {
            self.err(
                at.key("enforceMayAct"),
                "needs `tokenType: urn:ietf:params:oauth:token-type:jwt` (the actor's claims are read from it)",
            );
        }
    }

    fn token_source(&mut self, at: &FieldPath, loc: &CredentialLocation) {
        if let CredentialLocation::Expression(e) = loc {
            let text = e.0.as_str().unwrap_or_default();
            if !RAW_TOKEN_EXPRESSIONS.contains(&text.trim()) {
                self.err(
                    at.key("expression"),
                    "not supported yet: the only expression here is `jwt.rawToken` (the token `jwtAuth` validated)",
                );
            }
        }
    }

    fn token_type(&mut self, at: &FieldPath, t: &str) {
        // A custom type must be an absolute URI (RFC 8693 §3).
        let absolute = t.split_once(':').is_some_and(|(scheme, rest)| {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if !absolute || t.contains('#') || t.contains(char::is_whitespace) {
            self.err(
                at.clone(),
                format!("`{t}` is not a token type URI (e.g. `urn:ietf:params:oauth:token-type:access_token`)"),
            );
        }
    }

    fn client_auth(&mut self, at: &FieldPath, c: &ClientAuth) {
        self.unsupported(
            at,
            crate::model::common::present([
                ("certificate", &c.certificate),
                ("certificateHeader", &c.certificate_header),
            ]),
        );
        if c.client_id.is_empty() {
            self.err(at.key("clientId"), "empty");
        }
        match c.method.unwrap_or(ClientAuthMethod::ClientSecretBasic) {
            ClientAuthMethod::ClientSecretBasic => {
                if c.client_secret.is_none() {
                    self.err(at.clone(), "`clientSecretBasic` needs `clientSecret`");
                }
            }
            ClientAuthMethod::ClientSecretPost => {}
            ClientAuthMethod::PrivateKeyJwt => {
                if c.signing_key.is_none() {
                    self.err(at.clone(), "`privateKeyJwt` needs `signingKey`");
                }
                if c.assertion_audience.as_deref().is_none_or(str::is_empty) {
                    self.err(at.clone(), "`privateKeyJwt` needs `assertionAudience`");
                }
            }
        }
        let secret_method = !matches!(c.method, Some(ClientAuthMethod::PrivateKeyJwt));
        for (name, set) in [
            ("signingKey", c.signing_key.is_some()),
            ("alg", c.alg.is_some()),
            ("kid", c.kid.is_some()),
            ("assertionAudience", c.assertion_audience.is_some()),
        ] {
            if set && secret_method {
                self.err(at.key(name), "only with `method: privateKeyJwt`");
            }
        }
        if c.client_secret.is_some() && !secret_method {
            self.err(at.key("clientSecret"), "not with `method: privateKeyJwt` (it signs an assertion instead)");
        }
    }

    fn scopes(&mut self, at: &FieldPath, scopes: &[String]) {
        for (i, s) in scopes.iter().enumerate() {
            // RFC 6749 §3.3 scope-token.
            if s.is_empty() || !s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                self.err(
                    at.key("scopes").index(i),
                    format!("`{s}` is not a scope token (no spaces, quotes or backslashes)"),
                );
            }
        }
    }
}
