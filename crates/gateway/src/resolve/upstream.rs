//! Building what reaches upstreams: backend and MCP target policies over the route's
//! (route < backend < target, one kind at a time), `backendTLS` clients, and static
//! credentials (`backendAuth.key`, `credentials`).

use std::sync::Arc;

use agw_config::FieldPath;
use agw_config::model::{self, BackendAuth, BackendPolicies, SecretFileOrInline};
use agw_mcp::upstream::TargetHeaders;
use agw_mcp::{HttpClient, HttpTarget};
use agw_policy::location::Location;
use http::Uri;

use super::Builder;
use super::policy::{Credential, JwtSign, Policies};
use agw_policy::jwt::sign::{Signer, SignerError};

use crate::token_exchange::{self, TokenExchange};

impl token_exchange::Build for Builder {
    fn err(&mut self, at: FieldPath, message: String) {
        Builder::err(self, at, message);
    }
    fn warn(&mut self, at: FieldPath, message: String) {
        Builder::warn(self, at, message);
    }
    fn secret(&mut self, at: &FieldPath, s: &SecretFileOrInline) -> Option<model::Secret> {
        Builder::secret(self, at, s)
    }
    fn secret_text(&mut self, at: &FieldPath, s: &SecretFileOrInline) -> Option<model::Secret> {
        Builder::secret_text(self, at, s)
    }
    fn tls_client(&mut self, at: &FieldPath, tls: &model::BackendTls) -> Option<HttpClient> {
        Builder::tls_client(self, at, tls)
    }
    fn client(&self) -> HttpClient {
        self.client.clone()
    }
}

impl Builder {
    /// A route backend's (or named backend's) policies, written at `at`, replacing the
    /// route's policies of the same kind (`backendTLS` is handled where clients are built).
    pub(super) fn backend_overrides(&mut self, at: &FieldPath, p: &BackendPolicies, policies: &mut Policies) {
        if let Some(m) = &p.request_header_modifier {
            policies.request_headers = self.header_changes(&at.key("requestHeaderModifier"), m);
        }
        if let Some(m) = &p.response_header_modifier {
            policies.response_headers = self.header_changes(&at.key("responseHeaderModifier"), m);
        }
        if let Some(b) = &p.backend_auth {
            policies.credentials = self.credentials(&at.key("backendAuth"), b);
            policies.jwt_sign =
                b.jwt_sign.as_ref().and_then(|j| self.jwt_sign(&at.key("backendAuth").key("jwtSign"), j));
            policies.token_exchange = self.token_exchange(&at.key("backendAuth"), b);
            // Passthrough is a route policy (refused here): the backend's own auth replaces it.
            policies.passthrough = None;
        }
        if let Some(g) = &p.mcp_guardrails {
            policies.mcp_guardrails =
                crate::guardrails::GuardrailsPolicy::resolve(&at.key("mcpGuardrails"), g, &mut self.errors)
                    .map(std::sync::Arc::new);
        }
    }

    /// `backendAuth.key` and `credentials` (written at `at`), with their secrets read.
    pub(super) fn credentials(&mut self, at: &FieldPath, b: &BackendAuth) -> Vec<Credential> {
        let mut out = Vec::new();
        if let Some(k) = &b.key {
            let (value_at, location_at) = match k {
                model::KeyAuth::Full(_) => (at.key("key").key("value"), at.key("key").key("location")),
                model::KeyAuth::Short(_) => (at.key("key"), at.key("key")),
            };
            let location = self.location(&location_at, k.location(), Location::bearer());
            if let (Some(location), Some(value)) = (location, self.secret(&value_at, k.value())) {
                out.push(Credential { location, value });
            }
        }
        for (i, c) in b.credentials.iter().flatten().enumerate() {
            let at = at.key("credentials").index(i);
            let location = self.location(&at.key("location"), Some(&c.location), Location::bearer());
            if let (Some(location), Some(value)) = (location, self.secret(&at.key("key"), &c.key)) {
                out.push(Credential { location, value });
            }
        }
        out
    }

    /// `backendAuth.jwtSign` (written at `at`): the key read and checked by signing once.
    pub(super) fn jwt_sign(&mut self, at: &FieldPath, j: &model::JwtSign) -> Option<Arc<JwtSign>> {
        let location = self.location(&at.key("location"), j.location.as_ref(), Location::bearer())?;
        if !matches!(location, Location::Header { .. }) {
            self.err(at.key("location"), "not supported yet: a signed token goes in a header");
            return None;
        }
        let key = self.secret_text(&at.key("signingKey"), &j.signing_key)?;
        let claims = j.claims.clone().into_iter().collect();
        let ttl = j.ttl.map_or(std::time::Duration::from_secs(300), |d| d.get());
        let alg = j.alg.as_deref().unwrap_or("RS256");
        match Signer::new(alg, key.expose().as_bytes(), j.kid.clone(), claims, ttl) {
            Ok(signer) => Some(Arc::new(JwtSign { signer, location })),
            Err(e) => {
                let field = match e {
                    SignerError::Algorithm(_) => "alg",
                    SignerError::Key(_) => "signingKey",
                    SignerError::Reserved(_) => "claims",
                    SignerError::Ttl => "ttl",
                };
                self.err(at.key(field), e.to_string());
                None
            }
        }
    }

    /// `backendAuth.oauthTokenExchange` or `crossAppAccess` of `b` (written at `at`).
    pub(super) fn token_exchange(&mut self, at: &FieldPath, b: &BackendAuth) -> Option<Arc<TokenExchange>> {
        let built = if let Some(t) = &b.oauth_token_exchange {
            TokenExchange::oauth(self, &at.key("oauthTokenExchange"), t)
        } else if let Some(x) = &b.cross_app_access {
            TokenExchange::cross_app(self, &at.key("crossAppAccess"), x)
        } else {
            return None;
        };
        built.map(Arc::new)
    }

    /// An inline secret, or a file's content without its final line break. Errors name the
    /// file, never the content.
    fn secret(&mut self, at: &FieldPath, s: &SecretFileOrInline) -> Option<model::Secret> {
        let value = self.secret_text(at, s)?;
        if value.expose().bytes().any(|b| b.is_ascii_control()) {
            self.err(at.clone(), "the secret has control characters (it could not go in a header)");
            return None;
        }
        Some(value)
    }

    /// [`Self::secret`] for multi-line secrets (PEM keys).
    fn secret_text(&mut self, at: &FieldPath, s: &SecretFileOrInline) -> Option<model::Secret> {
        let value = match s {
            SecretFileOrInline::Inline(v) => v.clone(),
            SecretFileOrInline::File(f) => match super::policy::read_file(&f.file) {
                Ok(text) => model::Secret::new(text.trim_end_matches(['\r', '\n'])),
                Err(msg) => {
                    self.err(at.key("file"), msg);
                    return None;
                }
            },
        };
        if value.expose().is_empty() {
            self.err(at.clone(), "the secret is empty");
            return None;
        }
        Some(value)
    }

    /// An HTTP or SSE target (written at `at`): with `backendTLS`, its own client and always
    /// TLS; with header changes or credentials in effect, those for every request to it.
    pub(super) fn http_target(
        &mut self,
        at: &FieldPath,
        url: Uri,
        tls: Option<(FieldPath, &model::BackendTls)>,
        own: Option<&BackendPolicies>,
        policies: &Policies,
    ) -> Option<HttpTarget> {
        let mut target = HttpTarget::new(url);
        if let Some((tls_at, tls)) = tls {
            target.client = Some(self.tls_client(&tls_at, tls)?);
            let mut parts = target.url.clone().into_parts();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            target.url = Uri::from_parts(parts).ok()?;
        }
        let at = at.key("policies");
        let modifier = match own.and_then(|p| p.request_header_modifier.as_ref()) {
            Some(m) => self.header_changes(&at.key("requestHeaderModifier"), m),
            None => policies.request_headers.clone(),
        };
        let mut headers = TargetHeaders { modifier, ..TargetHeaders::default() };
        let credentials = match own.and_then(|p| p.backend_auth.as_ref()) {
            Some(b) => {
                // The target's own auth replaces the route's passthrough or signed token.
                let dynamic = [
                    policies.passthrough.as_ref(),
                    policies.jwt_sign.as_ref().map(|j| &j.location),
                    policies.token_exchange.as_ref().map(|x| &x.location),
                ];
                for location in dynamic.into_iter().flatten() {
                    if let Location::Header { name, .. } = location {
                        headers.remove.push(name.clone());
                    }
                }
                if let Some(j) = &b.jwt_sign {
                    let signer = self.jwt_sign(&at.key("backendAuth").key("jwtSign"), j);
                    headers.per_request = signer.map(|s| s as Arc<dyn agw_mcp::upstream::PerRequestHeader>);
                }
                self.credentials(&at.key("backendAuth"), b)
            }
            None => policies.credentials.clone(),
        };
        // Credentials are put on a request for the target's URL once: query parameters land
        // in the URL, headers and cookies in the headers every request gets.
        let mut req = http::Request::builder().uri(target.url.clone()).body(()).ok()?.into_parts().0;
        for c in &credentials {
            c.location.insert(&mut req, c.value.expose());
        }
        target.url = req.uri;
        for (name, mut value) in req.headers {
            value.set_sensitive(true);
            if let Some(name) = name {
                headers.credentials.push((name, value));
            }
        }
        if !headers.modifier.is_empty()
            || !headers.credentials.is_empty()
            || !headers.remove.is_empty()
            || headers.per_request.is_some()
        {
            target.headers = Some(Arc::new(headers));
        }
        Some(target)
    }

    /// The client for one `backendTLS` block (written at `at`): built once, shared by every
    /// upstream the block applies to.
    pub(super) fn tls_client(&mut self, at: &FieldPath, tls: &model::BackendTls) -> Option<HttpClient> {
        let key = at.to_string();
        if let Some(c) = self.tls_clients.get(&key) {
            return c.clone();
        }
        if tls.insecure == Some(true) {
            self.warn(
                at.key("insecure"),
                "the upstream's certificate is not verified: anyone on the path can read and change this traffic",
            );
        } else if tls.insecure_host == Some(true) {
            self.warn(
                at.key("insecureHost"),
                "the upstream's certificate name is not verified: any certificate from its CAs is accepted",
            );
        }
        let options = agw_http::tls::TlsOptions {
            root: tls.root.clone(),
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            hostname: tls.hostname.clone(),
            subject_alt_names: tls.subject_alt_names.clone(),
            insecure: tls.insecure.unwrap_or(false),
            insecure_host: tls.insecure_host.unwrap_or(false),
            alpn: tls.alpn.clone(),
        };
        let client = HttpClient::with_tls(&options).map_err(|e| self.err(at.key(e.field), e.message)).ok();
        self.tls_clients.insert(key, client.clone());
        client
    }
}
