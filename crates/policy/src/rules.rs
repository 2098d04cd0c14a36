//! Authorization rules in CEL (`mcpAuthorization`, `authorization`).
//!
//! Rules compile once, at config load. The decision over a rule list:
//! no rules → allow; any `deny` true → deny; any `require` not true → deny; any `allow` true →
//! allow; otherwise deny if there are `allow` rules, else allow. An evaluation error (a missing
//! claim, a type mismatch) counts as "not true": it never allows, and it never denies through a
//! `deny` rule.
//!
//! For listings, a rule that reads `mcp.tool.arguments` is evaluated with the arguments unknown
//! (three-valued logic: `unknown && false` is false, `unknown || true` is true); an item is
//! listed when some arguments could make the decision "allow". Calls are always checked with
//! the real arguments.

pub(crate) mod analysis;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use agw_config::model::Rule as RawRule;
use cel::objects::Value;
use cel::{Context, Env, Program};

use analysis::{eval3, free_variables, guard_is_whole, name_guard, reads_arguments, reads_mcp};

/// The variables rules may use.
pub const VARIABLES: [&str; 8] = ["jwt", "mcp", "request", "source", "apiKey", "basicAuth", "extauthz", "a2a"];

pub(crate) fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        crate::functions::register(&mut env);
        Arc::new(env)
    })
    .clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Deny,
    Require,
}

impl RuleKind {
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
            RuleKind::Require => "require",
        }
    }
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub kind: RuleKind,
    pub source: String,
    /// Whether the rule reads `mcp.tool.arguments` (so listings evaluate it three-valued).
    pub uses_arguments: bool,
    /// Whether the rule reads `mcp` at all (if not, one evaluation serves every item).
    reads_mcp: bool,
    /// The only item names the rule can be true for, when its syntax says so.
    guard: Option<(ItemKind, HashSet<String>)>,
    /// The rule is nothing but its guard (`mcp.tool.name == "echo"`): true for exactly
    /// those items, without running CEL.
    guard_is_whole: bool,
    /// The variables the rule reads ([`Uses`]).
    uses: Uses,
    program: Program,
}

/// A rule that does not compile: its index in the list and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub index: usize,
    pub message: String,
}

/// The value of one rule for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    True,
    False,
    /// Evaluation failed (missing claim, wrong type…): counts as not true.
    Error(String),
    /// Depends on values not known yet (the arguments of a call, when listing).
    Unknown,
}

impl Outcome {
    fn from_result(r: Result<Value, cel::ExecutionError>) -> Outcome {
        match r {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(format!("the rule gave {other:?}, not a boolean")),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }

    pub fn is_true(&self) -> bool {
        *self == Outcome::True
    }
}

/// The decision, and which rule made it (an index into the list), if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: Option<usize>,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoRules,
    DenyMatched,
    RequireFailed,
    AllowMatched,
    NoAllowMatched,
    NoAllowRules,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::NoRules => "no rules: allowed",
            Reason::DenyMatched => "a deny rule is true",
            Reason::RequireFailed => "a require rule is not true",
            Reason::AllowMatched => "an allow rule is true",
            Reason::NoAllowMatched => "no allow rule is true",
            Reason::NoAllowRules => "no deny or require rule applies and there are no allow rules",
        }
    }
}

/// An ordered list of compiled rules (listener and route lists are concatenated).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Shared: preparing rules for a request clones this list, which is then one count.
    rules: Arc<[Arc<Rule>]>,
    /// The variables any rule reads: only those are bound for an evaluation.
    uses: Uses,
}

/// A set of [`VARIABLES`], as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses(u8);

impl Uses {
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Uses {
        Uses(names.into_iter().filter_map(|n| VARIABLES.iter().position(|v| *v == n)).fold(0, |m, i| m | 1 << i))
    }

    /// Whether `name` (one of [`VARIABLES`]) is read.
    pub fn reads(self, name: &str) -> bool {
        VARIABLES.iter().position(|v| *v == name).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    pub fn union(self, other: Uses) -> Uses {
        Uses(self.0 | other.0)
    }
}

impl Rules {
    /// Compiles every rule; all problems are reported.
    pub fn compile(raw: &[RawRule]) -> Result<Rules, Vec<CompileError>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (index, r) in raw.iter().enumerate() {
            match compile_one(r) {
                Ok(rule) => rules.push(Arc::new(rule)),
                Err(message) => errors.push(CompileError { index, message }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let uses = rules.iter().fold(Uses::default(), |u, r| u.union(r.uses));
        Ok(Rules { rules: rules.into(), uses })
    }

    /// This list followed by `other` (a deny anywhere wins, requires AND, allows OR).
    pub fn merged(&self, other: &Rules) -> Rules {
        Rules {
            rules: self.rules.iter().chain(other.rules.iter()).cloned().collect(),
            uses: self.uses.union(other.uses),
        }
    }

    /// The variables these rules read: a caller need not compute the others.
    pub fn uses(&self) -> Uses {
        self.uses
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| r.as_ref())
    }

    /// Whether any rule reads `mcp.tool.arguments`.
    pub fn uses_arguments(&self) -> bool {
        self.rules.iter().any(|r| r.uses_arguments)
    }

    /// Decides a request that is not about an MCP item (HTTP `authorization`).
    pub fn decide(&self, vars: &Vars) -> Decision {
        let ctx = vars.context(None, self.uses);
        decide_with(&self.rules, |_, r| Outcome::from_result(r.program.execute(&ctx)))
    }

    /// Every rule's outcome, then the decision (for `policy explain`). No shortcuts: each
    /// rule is evaluated in full, so errors show as errors.
    pub fn explain(&self, vars: &Vars, item: Option<&McpItem<'_>>) -> (Vec<Outcome>, Decision) {
        let ctx = vars.context(item, self.uses);
        let outcomes: Vec<Outcome> = self.rules.iter().map(|r| Outcome::from_result(r.program.execute(&ctx))).collect();
        let decision = decide_with(&self.rules, |i, _| outcomes[i].clone());
        (outcomes, decision)
    }

    /// Readies the rules for many items of one request (a listing, or calls in a batch).
    pub fn prepare(&self, vars: Vars) -> Prepared {
        Prepared { constant: self.rules.iter().map(|_| OnceLock::new()).collect(), rules: self.clone(), vars }
    }
}

/// An MCP item a rule is asked about.
#[derive(Debug, Clone, Copy)]
pub struct McpItem<'a> {
    pub method: &'a str,
    pub kind: ItemKind,
    /// Tool or prompt name, or resource URI (template), as the upstream knows it.
    pub name: &'a str,
    pub target: &'a str,
    /// A tool call's arguments; `None` while listing (unknown).
    pub arguments: Option<&'a serde_json::Value>,
}

/// Rules with one request's variables, deciding item after item. Rules that do not read
/// `mcp` are evaluated once; rules whose syntax names the items they allow are skipped for
/// every other item; the rest are evaluated per item.
#[derive(Debug)]
pub struct Prepared {
    rules: Rules,
    vars: Vars,
    constant: Vec<OnceLock<Outcome>>,
}

impl Prepared {
    /// The outcome of rule `i` for `item`, evaluating as little as possible. `ctx` is built
    /// on first need; `three_valued` treats unknown arguments as unknown.
    fn outcome(
        &self,
        i: usize,
        item: &McpItem<'_>,
        ctx: &mut Option<Context<'static, 'static>>,
        three_valued: bool,
    ) -> Outcome {
        let rule = &self.rules.rules[i];
        if let Some((kind, names)) = &rule.guard {
            if *kind != item.kind || !names.contains(item.name) {
                return Outcome::False;
            }
            if rule.guard_is_whole {
                return Outcome::True;
            }
        }
        let uses = self.rules.uses;
        if !rule.reads_mcp {
            return self.constant[i]
                .get_or_init(|| Outcome::from_result(rule.program.execute(&self.vars.context(None, uses))))
                .clone();
        }
        let ctx = ctx.get_or_insert_with(|| self.vars.context(Some(item), uses));
        if three_valued && rule.uses_arguments {
            eval3(rule.program.expression(), ctx)
        } else {
            Outcome::from_result(rule.program.execute(ctx))
        }
    }

    /// Decides a call (or get/read) of `item`.
    pub fn decide(&self, item: &McpItem<'_>) -> Decision {
        let mut ctx = None;
        decide_with(&self.rules.rules, |i, _| self.outcome(i, item, &mut ctx, false))
    }

    /// For listings: whether some values of the unknown arguments could make the decision
    /// "allow" (three-valued: `unknown && false` is false, `unknown || true` is true). Only
    /// tools take arguments; for prompts and resources this is [`Prepared::decide`].
    pub fn could_allow(&self, item: &McpItem<'_>) -> bool {
        let three_valued = item.kind == ItemKind::Tool && item.arguments.is_none() && self.rules.uses_arguments();
        if !three_valued {
            return self.decide(item).allowed;
        }
        let mut ctx = None;
        let mut has_allow = false;
        let mut some_allow_possible = false;
        for (i, r) in self.rules.rules.iter().enumerate() {
            let o = self.outcome(i, item, &mut ctx, true);
            match r.kind {
                RuleKind::Deny if o == Outcome::True => return false,
                RuleKind::Require if matches!(o, Outcome::False | Outcome::Error(_)) => return false,
                RuleKind::Allow => {
                    has_allow = true;
                    some_allow_possible |= matches!(o, Outcome::True | Outcome::Unknown);
                }
                RuleKind::Deny | RuleKind::Require => {}
            }
        }
        !has_allow || some_allow_possible
    }
}

/// The decision procedure; `outcome(i, rule)` is asked only for the rules it needs.
fn decide_with(rules: &[Arc<Rule>], mut outcome: impl FnMut(usize, &Rule) -> Outcome) -> Decision {
    if rules.is_empty() {
        return Decision { allowed: true, rule: None, reason: Reason::NoRules };
    }
    for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.kind == RuleKind::Deny) {
        if outcome(i, r).is_true() {
            return Decision { allowed: false, rule: Some(i), reason: Reason::DenyMatched };
        }
    }
    for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.kind == RuleKind::Require) {
        if !outcome(i, r).is_true() {
            return Decision { allowed: false, rule: Some(i), reason: Reason::RequireFailed };
        }
    }
    let mut any_allow = false;
    for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.kind == RuleKind::Allow) {
        any_allow = true;
        if outcome(i, r).is_true() {
            return Decision { allowed: true, rule: Some(i), reason: Reason::AllowMatched };
        }
    }
    if any_allow {
        Decision { allowed: false, rule: None, reason: Reason::NoAllowMatched }
    } else {
        Decision { allowed: true, rule: None, reason: Reason::NoAllowRules }
    }
}

fn compile_one(r: &RawRule) -> Result<Rule, String> {
    let source = r.expression();
    let program = env().compile(source).map_err(|e| describe_parse_errors(&e))?;
    let mut free = HashSet::new();
    free_variables(program.expression(), &mut Vec::new(), &mut free);
    let mut unknown: Vec<&str> = free.iter().copied().filter(|v| !VARIABLES.contains(v)).collect();
    unknown.sort_unstable();
    if let Some(first) = unknown.first() {
        return Err(format!("unknown variable `{first}` (rules can use {})", VARIABLES.join(", ")));
    }
    let kind = match r {
        RawRule::Allow(_) => RuleKind::Allow,
        RawRule::Deny(_) => RuleKind::Deny,
        RawRule::Require(_) => RuleKind::Require,
    };
    let expr = program.expression();
    Ok(Rule {
        kind,
        source: source.to_string(),
        uses_arguments: reads_arguments(expr),
        reads_mcp: reads_mcp(expr),
        guard: name_guard(expr),
        guard_is_whole: guard_is_whole(expr),
        uses: Uses::of(free.iter().copied()),
        program,
    })
}

pub(crate) fn describe_parse_errors(e: &cel::ParseErrors) -> String {
    let parts: Vec<String> = e
        .errors
        .iter()
        .map(|p| {
            let msg = p.msg.lines().next().unwrap_or(&p.msg);
            format!("invalid CEL at column {}: {msg}", p.pos.1)
        })
        .collect();
    parts.join("; ")
}

/// The inputs of one evaluation, as CEL values.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub jwt: Option<Value>,
    pub request: Option<Value>,
    pub source: Option<Value>,
    pub api_key: Option<Value>,
    pub basic_auth: Option<Value>,
    /// What an `extAuthz` service said about the request (its metadata).
    pub extauthz: Option<Value>,
    /// On `a2a` routes: the A2A call (`method`, `taskId`, `contextId`).
    pub a2a: Option<Value>,
}

fn empty_map() -> Value {
    Value::Map(std::collections::HashMap::<String, Value>::new().into())
}

impl Vars {
    /// A CEL context with the variables the rules read bound (missing ones as empty maps, so
    /// `has(jwt.sub)` is false rather than an error). Binding converts a value for the
    /// interpreter, so unread ones are left out.
    fn context(&self, item: Option<&McpItem<'_>>, uses: Uses) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(env());
        if uses.reads("mcp") {
            ctx.add_variable_from_value("mcp", item.map_or_else(empty_map, mcp_value));
        }
        for (name, v) in [
            ("jwt", &self.jwt),
            ("request", &self.request),
            ("source", &self.source),
            ("apiKey", &self.api_key),
            ("basicAuth", &self.basic_auth),
            ("extauthz", &self.extauthz),
            ("a2a", &self.a2a),
        ] {
            if uses.reads(name) {
                ctx.add_variable_from_value(name, v.clone().unwrap_or_else(empty_map));
            }
        }
        ctx
    }
}

/// Converts JSON (claims, arguments, metadata) to a CEL value. Whole numbers that fit are
/// `int`, as CEL literals are (so `jwt.exp - 60` works); larger ones `uint`, others `double`.
pub fn to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(std::sync::Arc::new(s.clone())),
        J::Array(a) => Value::List(std::sync::Arc::new(a.iter().map(to_cel).collect())),
        J::Object(o) => {
            let map: std::collections::HashMap<String, Value> = o.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Value::Map(map.into())
        }
    }
}

/// What an MCP rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
}

impl ItemKind {
    pub fn field(self) -> &'static str {
        match self {
            ItemKind::Tool => "tool",
            ItemKind::Prompt => "prompt",
            ItemKind::Resource => "resource",
        }
    }
}

/// The `mcp` variable: `{method, tool|prompt|resource: {name, target, arguments?}}`.
/// `arguments` is set only for tool calls (absent while listing).
pub fn mcp_value(item: &McpItem<'_>) -> Value {
    let mut inner: HashMap<String, Value> = HashMap::with_capacity(3);
    inner.insert("name".into(), Value::from(item.name.to_string()));
    inner.insert("target".into(), Value::from(item.target.to_string()));
    if let Some(a) = item.arguments {
        inner.insert("arguments".into(), to_cel(a));
    }
    let mut mcp: HashMap<String, Value> = HashMap::with_capacity(2);
    mcp.insert("method".into(), Value::from(item.method.to_string()));
    mcp.insert(item.kind.field().into(), inner.into());
    mcp.into()
}

#[cfg(test)]
mod tests;
