//! OpenAPI services as MCP tools (`openapi` MCP targets). An [`OpenApiServer`] is an MCP
//! server inside the gateway: it lists a spec's operations as tools (`spec.rs`) and turns each
//! `tools/call` into one HTTP request to the service (`call.rs`), with the target's TLS
//! client and credentials. The spec comes from the config (a file or inline, read at load) or
//! from a URL, fetched on first use and kept for the config version.

pub mod call;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use agw_http::HttpClient;
use agw_http::body;
use agw_mcp::upstream::{HttpTarget, LocalServer};
use http::{HeaderMap, Method, Request, Uri};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::warn;

pub use spec::Spec;

/// How long a failed fetch of a spec URL is remembered before the next try.
const FETCH_RETRY: Duration = Duration::from_secs(5);
/// Time for fetching a spec.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the spec comes from.
#[derive(Debug)]
pub enum Source {
    /// Read at load.
    Loaded(Arc<Spec>),
    /// Fetched on first use.
    Url(Uri),
}

type Fetched = (tokio::time::Instant, Result<Arc<Spec>, String>);

/// One `openapi` target.
#[derive(Debug)]
pub struct OpenApiServer {
    name: String,
    /// The service: scheme and authority (and query credentials), client, headers.
    service: HttpTarget,
    source: Source,
    /// The last fetch from [`Source::Url`]: when, and what it gave.
    fetched: Mutex<Option<Fetched>>,
    shared: HttpClient,
    limits: call::Limits,
}

impl OpenApiServer {
    pub fn new(name: &str, service: HttpTarget, source: Source, shared: HttpClient) -> OpenApiServer {
        OpenApiServer {
            name: name.to_string(),
            service,
            source,
            fetched: Mutex::new(None),
            shared,
            limits: call::Limits::default(),
        }
    }

    async fn spec(&self) -> Result<Arc<Spec>, String> {
        let url = match &self.source {
            Source::Loaded(s) => return Ok(s.clone()),
            Source::Url(u) => u,
        };
        let mut held = self.fetched.lock().await;
        if let Some((at, result)) = held.as_ref()
            && (result.is_ok() || at.elapsed() < FETCH_RETRY)
        {
            return result.clone();
        }
        let result = fetch(&self.shared, url).await.map(Arc::new);
        if let Err(e) = &result {
            warn!(target = %self.name, url = %agw_config::redact::url(&url.to_string()), error = %e, "OpenAPI spec not fetched");
        }
        *held = Some((tokio::time::Instant::now(), result.clone()));
        result
    }

    async fn answer(&self, request: &Value, headers: &HeaderMap) -> Result<Value, (i64, String)> {
        let method = request.get("method").and_then(Value::as_str).unwrap_or_default();
        let internal = |e: String| (-32603, format!("OpenAPI target `{}`: {e}", self.name));
        match method {
            "initialize" => {
                let version = request["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18");
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {"listChanged": false}},
                    "serverInfo": {"name": format!("openapi-{}", self.name), "version": env!("CARGO_PKG_VERSION")},
                }))
            }
            "ping" => Ok(json!({})),
            "tools/list" => {
                let spec = self.spec().await.map_err(internal)?;
                Ok(json!({"tools": spec.operations.iter().map(|o| o.tool.clone()).collect::<Vec<_>>()}))
            }
            "tools/call" => {
                let spec = self.spec().await.map_err(internal)?;
                let name = request["params"]["name"].as_str().unwrap_or_default();
                let Some(op) = spec.operations.iter().find(|o| o.name == name) else {
                    return Err((-32602, format!("Unknown tool: {name}")));
                };
                let args = request["params"].get("arguments").cloned().unwrap_or(Value::Null);
                let client = self.service.client(&self.shared);
                Ok(call::call(client, &self.service, &spec.base_path, op, &args, headers, &self.limits).await)
            }
            "resources/list" => Ok(json!({"resources": []})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
            "prompts/list" => Ok(json!({"prompts": []})),
            other => Err((-32601, format!("Method not found: {other}"))),
        }
    }
}

impl LocalServer for OpenApiServer {
    fn handle<'a>(
        &'a self,
        request: &'a Value,
        headers: &'a HeaderMap,
    ) -> std::pin::Pin<Box<dyn Future<Output = Value> + Send + 'a>> {
        Box::pin(async move {
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            match self.answer(request, headers).await {
                Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err((code, message)) => {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
                }
            }
        })
    }
}

/// Fetches and reads a spec from `url`.
pub async fn fetch(client: &HttpClient, url: &Uri) -> Result<Spec, String> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url.clone())
        .header(http::header::ACCEPT, "application/json, application/yaml;q=0.9, */*;q=0.5")
        .body(body::empty())
        .map_err(|e| e.to_string())?;
    let answer = client.fetch(req, spec::MAX_SPEC_BYTES, FETCH_TIMEOUT).await.map_err(|e| e.to_string())?;
    if !answer.status.is_success() {
        return Err(format!("HTTP {}", answer.status));
    }
    let text = String::from_utf8(answer.body.to_vec()).map_err(|_| "the spec is not UTF-8".to_string())?;
    spec::parse(&text)
}
