//! `policy explain` and `policy test`: run a route's `mcpAuthorization` rules for a described
//! request, without traffic, and show why they decide what they decide.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agw_policy::jwt::JwtError;
use agw_policy::rules::{Decision, ItemKind, McpItem, Outcome, RuleKind, Vars, to_cel};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::AuthnKind;
use crate::resolve::{Backend, Runtime};
use crate::route::Route;

/// The request to judge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    /// A label for `policy test` output.
    #[serde(default)]
    pub name: Option<String>,
    /// Route name; default: the first route with `mcpAuthorization`.
    #[serde(default)]
    pub route: Option<String>,
    /// A file holding a JWT (validated with the route's `jwtAuth` when it has one).
    #[serde(default)]
    pub token: Option<PathBuf>,
    /// Claims to use directly instead of a token.
    #[serde(default)]
    pub claims: Option<Map<String, Value>>,
    /// `tools/call` (default with `tool`), `tools/list`, `prompts/get`, `resources/read`, …
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    /// Tool arguments (calls only).
    #[serde(default)]
    pub arguments: Option<Value>,
    /// For `policy test`: `allow` or `deny`.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// The token itself (the admin page's playground), instead of a file.
    #[serde(skip)]
    pub token_text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Expect {
    Allow,
    Deny,
}

/// A `policy test` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestFile {
    /// The gateway config, relative to the test file.
    pub config: PathBuf,
    /// Default route for every case.
    #[serde(default)]
    pub route: Option<String>,
    pub cases: Vec<Case>,
}

/// Every rule's outcome and the decision.
#[derive(Debug)]
pub struct Explanation {
    pub route: String,
    pub caller: String,
    pub request: String,
    /// Listing: arguments unknown, decided three-valued.
    pub listing: bool,
    pub rules: Vec<(RuleKind, String, Outcome)>,
    pub decision: Decision,
    pub allowed: bool,
}

fn routes(runtime: &Runtime) -> impl Iterator<Item = &Route> {
    runtime.binds.iter().flat_map(|b| b.listeners.iter()).flat_map(|l| l.routes().iter())
}

fn find_route<'a>(runtime: &'a Runtime, name: Option<&str>) -> Result<&'a Route, String> {
    match name {
        Some(n) => routes(runtime).find(|r| r.name == n).ok_or_else(|| {
            let names: Vec<&str> = routes(runtime).map(|r| r.name.as_str()).collect();
            format!("no route named `{n}` (routes: {})", names.join(", "))
        }),
        None => routes(runtime)
            .find(|r| r.policies.mcp_authorization.is_some())
            .ok_or_else(|| "no route has `mcpAuthorization` (name one with --route)".to_string()),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The caller's claims: given directly, or from a token validated like the route would.
fn claims(route: &Route, case: &Case, base: &Path) -> Result<(Option<Map<String, Value>>, String), String> {
    if let Some(c) = &case.claims {
        let sub = c.get("sub").and_then(Value::as_str).unwrap_or("?");
        return Ok((Some(c.clone()), format!("claims given (sub={sub})")));
    }
    let token = match (&case.token_text, &case.token) {
        (Some(t), _) => t.clone(),
        (None, Some(file)) => {
            let path = base.join(file);
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read token file {}: {e}", path.display()))?
        }
        (None, None) => return Ok((None, "anonymous (no token)".into())),
    };
    let token = token.trim();
    let validator = route.policies.authn.iter().find_map(|a| match &a.kind {
        AuthnKind::Jwt { validator, .. } => Some(validator),
        _ => None,
    });
    match validator {
        Some(v) => match v.validate(token, now()) {
            Ok(c) => {
                let sub = c.get("sub").and_then(Value::as_str).unwrap_or("?").to_string();
                Ok((Some(c.map().clone()), format!("token verified by the route's jwtAuth (sub={sub})")))
            }
            Err(JwtError::UnknownKid { .. }) => Err("the token's key id is not in the route's JWKS (remote JWKS are not fetched by this command; use `claims`)".into()),
            Err(e) => Err(format!("the route's jwtAuth refuses the token: {e}")),
        },
        None => Err("the route has no jwtAuth to validate the token with; give `claims` instead".into()),
    }
}

/// Runs the route's `mcpAuthorization` for one described request.
pub fn explain(runtime: &Runtime, case: &Case, base: &Path) -> Result<Explanation, String> {
    let route = find_route(runtime, case.route.as_deref())?;
    let rules = route.policies.mcp_authorization.clone().unwrap_or_default();
    let (claims, caller) = claims(route, case, base)?;
    let (kind, name) = match (&case.tool, &case.prompt, &case.resource) {
        (Some(t), None, None) => (ItemKind::Tool, t.as_str()),
        (None, Some(p), None) => (ItemKind::Prompt, p.as_str()),
        (None, None, Some(r)) => (ItemKind::Resource, r.as_str()),
        _ => return Err("name exactly one of `tool`, `prompt`, `resource`".into()),
    };
    let method = case.method.clone().unwrap_or_else(|| {
        match kind {
            ItemKind::Tool => "tools/call",
            ItemKind::Prompt => "prompts/get",
            ItemKind::Resource => "resources/read",
        }
        .to_string()
    });
    let listing = method.ends_with("/list");
    let target = match &route.backend {
        Backend::Mcp(m) => m.targets.first().map(|t| t.name.clone()).unwrap_or_default(),
        Backend::Host { .. } | Backend::Split(_) | Backend::None => {
            return Err(format!("route `{}` is not an MCP route", route.name));
        }
    };
    let empty = Value::Object(Map::new());
    let arguments = match (kind, listing) {
        (ItemKind::Tool, false) => Some(case.arguments.as_ref().unwrap_or(&empty)),
        _ => None,
    };
    let vars = Vars { jwt: claims.map(|c| to_cel(&Value::Object(c))), ..Vars::default() };
    let item = McpItem { method: &method, kind, name, target: &target, arguments };
    let (outcomes, decision) = rules.explain(&vars, Some(&item));
    let allowed = if listing { rules.prepare(vars).could_allow(&item) } else { decision.allowed };
    Ok(Explanation {
        route: route.name.clone(),
        caller,
        request: format!("{method} {} `{name}` on target `{target}`", kind.field()),
        listing,
        rules: rules.iter().zip(outcomes).map(|(r, o)| (r.kind, r.source.clone(), o)).collect(),
        decision,
        allowed,
    })
}

impl Explanation {
    /// Human-readable, one rule per line.
    pub fn render(&self) -> String {
        let mut out =
            format!("route:    {}\ncaller:   {}\nrequest:  {}\nrules:\n", self.route, self.caller, self.request);
        if self.rules.is_empty() {
            out.push_str("  (none)\n");
        }
        for (i, (kind, source, outcome)) in self.rules.iter().enumerate() {
            let result = match outcome {
                Outcome::True => "true".to_string(),
                Outcome::False => "false".to_string(),
                Outcome::Error(e) => format!("not true (error: {e})"),
                Outcome::Unknown => "unknown".to_string(),
            };
            out.push_str(&format!("  [{i}] {:<7} {source}\n        → {result}\n", kind.name()));
        }
        let verdict = if self.allowed { "allow" } else { "deny" };
        if self.listing {
            out.push_str(&format!(
                "decision: {verdict} (listing: arguments unknown; listed when some arguments could be allowed)\n"
            ));
        } else {
            let by = self.decision.rule.map(|r| format!(", rule [{r}]")).unwrap_or_default();
            out.push_str(&format!("decision: {verdict} ({}{by})\n", self.decision.reason.describe()));
        }
        out
    }
}
