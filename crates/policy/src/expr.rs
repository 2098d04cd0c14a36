//! Single CEL expressions that compute a value (access-log fields, span attributes, filters,
//! sampling), as opposed to rule lists that decide. Compiled once at load; unknown variables
//! are config errors. Evaluation never panics: a failure is `None`.

use std::collections::HashSet;

use cel::objects::Value;
use cel::{Context, Program};

use crate::rules::analysis::free_variables;
use crate::rules::{describe_parse_errors, env};

/// The variables telemetry expressions may use.
pub const VARIABLES: [&str; 9] =
    ["request", "response", "jwt", "mcp", "source", "apiKey", "basicAuth", "extauthz", "backend"];

/// The inputs of one evaluation; only the ones an expression reads are bound. A missing one
/// is an empty map, so `has(jwt.sub)` is false rather than an error.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub jwt: Option<Value>,
    pub mcp: Option<Value>,
    pub source: Option<Value>,
    pub api_key: Option<Value>,
    pub basic_auth: Option<Value>,
    /// What an `extAuthz` service said about the request (its metadata).
    pub extauthz: Option<Value>,
    /// The route's backend: `name`, `type` (`static`, `mcp`), `protocol` (`http`, `a2a`, `mcp`).
    pub backend: Option<Value>,
}

/// The request-side variables rules see, as expression inputs (`response`, `mcp` and
/// `backend` are added by whoever knows them).
impl From<crate::rules::Vars> for Inputs {
    fn from(v: crate::rules::Vars) -> Inputs {
        Inputs {
            request: v.request,
            source: v.source,
            jwt: v.jwt,
            api_key: v.api_key,
            basic_auth: v.basic_auth,
            extauthz: v.extauthz,
            ..Inputs::default()
        }
    }
}

/// A compiled expression.
pub struct Expression {
    source: String,
    program: Program,
    /// Bits over [`VARIABLES`].
    uses: u16,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Compiles `source`; the error says what is wrong and where (column).
    pub fn compile(source: &str) -> Result<Expression, String> {
        let program = env().compile(source).map_err(|e| describe_parse_errors(&e))?;
        let mut free = HashSet::new();
        free_variables(program.expression(), &mut Vec::new(), &mut free);
        let mut unknown: Vec<&str> = free.iter().copied().filter(|v| !VARIABLES.contains(v)).collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            return Err(format!("unknown variable `{first}` (expressions can use {})", VARIABLES.join(", ")));
        }
        let uses = free.iter().filter_map(|n| VARIABLES.iter().position(|v| v == n)).fold(0u16, |m, i| m | 1 << i);
        Ok(Expression { source: source.to_string(), program, uses })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression reads `name` (one of [`VARIABLES`]).
    pub fn reads(&self, name: &str) -> bool {
        VARIABLES.iter().position(|v| *v == name).is_some_and(|i| self.uses & (1 << i) != 0)
    }

    /// The value, or `None` when evaluation fails.
    pub fn eval(&self, inputs: &Inputs) -> Option<Value> {
        let mut ctx = Context::with_env(env());
        for (name, v) in [
            ("request", &inputs.request),
            ("response", &inputs.response),
            ("jwt", &inputs.jwt),
            ("mcp", &inputs.mcp),
            ("source", &inputs.source),
            ("apiKey", &inputs.api_key),
            ("basicAuth", &inputs.basic_auth),
            ("extauthz", &inputs.extauthz),
            ("backend", &inputs.backend),
        ] {
            if self.reads(name) {
                let value =
                    v.clone().unwrap_or_else(|| Value::Map(std::collections::HashMap::<String, Value>::new().into()));
                ctx.add_variable_from_value(name, value);
            }
        }
        self.program.execute(&ctx).ok()
    }

    /// A filter: `true` only for a boolean `true` result.
    pub fn eval_bool(&self, inputs: &Inputs) -> bool {
        matches!(self.eval(inputs), Some(Value::Bool(true)))
    }

    /// A sampling decision: a boolean as it is, a number as the probability of `true`
    /// (clamped to 0..=1; `draw` is a uniform number in [0, 1)), anything else `false`.
    pub fn eval_sample(&self, inputs: &Inputs, draw: f64) -> bool {
        match self.eval(inputs) {
            Some(Value::Bool(b)) => b,
            Some(Value::Float(p)) => draw < p.clamp(0.0, 1.0),
            Some(Value::Int(n)) => draw < (n.clamp(0, 1) as f64),
            Some(Value::UInt(n)) => draw < (n.min(1) as f64),
            _ => false,
        }
    }

    /// A string or bytes value as bytes (a header value); anything else is `None`.
    pub fn eval_bytes(&self, inputs: &Inputs) -> Option<Vec<u8>> {
        match self.eval(inputs)? {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Bytes(b) => Some(b.to_vec()),
            _ => None,
        }
    }

    /// A body: a string or bytes as they are, any other value as JSON.
    pub fn eval_body(&self, inputs: &Inputs) -> Option<Vec<u8>> {
        match self.eval(inputs)? {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Bytes(b) => Some(b.to_vec()),
            v => v.json().ok().map(|j| j.to_string().into_bytes()),
        }
    }

    /// A delay: a duration as it is, a number as milliseconds; zero, negative, not finite or
    /// not one of those is `None`.
    pub fn eval_duration(&self, inputs: &Inputs) -> Option<std::time::Duration> {
        let ms = match self.eval(inputs)? {
            Value::Duration(d) => return d.to_std().ok().filter(|d| !d.is_zero()),
            Value::Int(n) => n as f64,
            Value::UInt(n) => n as f64,
            Value::Float(x) => x,
            _ => return None,
        };
        (ms.is_finite() && ms > 0.0).then(|| std::time::Duration::from_secs_f64(ms.min(1e15) / 1000.0))
    }

    /// The value as JSON (for a log line or a span attribute), `None` when evaluation fails.
    pub fn eval_json(&self, inputs: &Inputs) -> Option<serde_json::Value> {
        let v = self.eval(inputs)?;
        match v {
            Value::Null => None,
            v => v.json().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::to_cel;

    #[test]
    fn compiles_checks_variables_and_evaluates() {
        assert!(Expression::compile("request.headers['user-agent']").is_ok());
        let err = Expression::compile("req.path").unwrap_err();
        assert!(err.contains("unknown variable `req`"), "{err}");
        assert!(Expression::compile("request.path ==").unwrap_err().contains("column"));

        let e = Expression::compile("request.headers['user-agent']").unwrap();
        let inputs = Inputs {
            request: Some(to_cel(&serde_json::json!({"headers": {"user-agent": "curl/8"}}))),
            ..Inputs::default()
        };
        assert_eq!(e.eval_json(&inputs), Some(serde_json::json!("curl/8")));
        // A missing variable is an empty map: the lookup fails, no panic, no value.
        assert_eq!(e.eval_json(&Inputs::default()), None);
        let f = Expression::compile("response.code >= 400").unwrap();
        let r = |code: i64| Inputs { response: Some(to_cel(&serde_json::json!({"code": code}))), ..Inputs::default() };
        assert!(f.eval_bool(&r(404)));
        assert!(!f.eval_bool(&r(200)));
        assert!(!Expression::compile("'yes'").unwrap().eval_bool(&Inputs::default()));
    }

    #[test]
    fn durations_bodies_and_header_values() {
        let d = |src: &str| Expression::compile(src).unwrap().eval_duration(&Inputs::default());
        assert_eq!(d("1500"), Some(std::time::Duration::from_millis(1500)));
        assert_eq!(d("2.5"), Some(std::time::Duration::from_micros(2500)));
        assert_eq!(d("duration('500ms')"), Some(std::time::Duration::from_millis(500)));
        assert_eq!(d("0"), None);
        assert_eq!(d("-3"), None);
        assert_eq!(d("'soon'"), None);
        assert_eq!(d("duration('0s')"), None);
        let b = |src: &str| Expression::compile(src).unwrap().eval_body(&Inputs::default());
        assert_eq!(b("'hi'"), Some(b"hi".to_vec()));
        assert_eq!(b("{'a': 1}"), Some(br#"{"a":1}"#.to_vec()));
        assert_eq!(Expression::compile("1").unwrap().eval_bytes(&Inputs::default()), None);
    }

    #[test]
    fn random_is_a_double_in_the_unit_interval() {
        let e = Expression::compile("random()").unwrap();
        for _ in 0..100 {
            match e.eval(&Inputs::default()) {
                Some(Value::Float(x)) => assert!((0.0..1.0).contains(&x)),
                other => panic!("{other:?}"),
            }
        }
        let always = Expression::compile("random() < 1.0 ? 2000 : 0").unwrap();
        assert_eq!(always.eval_json(&Inputs::default()), Some(serde_json::json!(2000)));
    }

    #[test]
    fn sampling_takes_booleans_and_ratios() {
        let s = |src: &str, draw: f64| Expression::compile(src).unwrap().eval_sample(&Inputs::default(), draw);
        assert!(s("true", 0.99));
        assert!(!s("false", 0.0));
        assert!(s("0.5", 0.49));
        assert!(!s("0.5", 0.5));
        assert!(!s("0.0", 0.0));
        assert!(s("1.0", 0.999));
        assert!(s("7.5", 0.999), "clamped to 1");
        assert!(!s("-1.0", 0.0), "clamped to 0");
        assert!(s("1", 0.3));
        assert!(!s("'x'", 0.0));
    }
}
