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

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use agw_config::model::Rule as RawRule;
use cel::common::ast::operators::{CONDITIONAL, LOGICAL_AND, LOGICAL_NOT, LOGICAL_OR};
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::objects::Value;
use cel::{Context, Env, Program};

/// The variables rules may use.
pub const VARIABLES: [&str; 6] = ["jwt", "mcp", "request", "source", "apiKey", "basicAuth"];

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
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
    rules: Vec<Arc<Rule>>,
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
        if errors.is_empty() { Ok(Rules { rules }) } else { Err(errors) }
    }

    /// This list followed by `other` (a deny anywhere wins, requires AND, allows OR).
    pub fn merged(&self, other: &Rules) -> Rules {
        Rules { rules: self.rules.iter().chain(other.rules.iter()).cloned().collect() }
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

    /// Decides for fully known inputs.
    pub fn decide(&self, vars: &Vars) -> Decision {
        let ctx = vars.context();
        let eval = |r: &Rule| Outcome::from_result(r.program.execute(&ctx));
        decide_with(&self.rules, |r| eval(r))
    }

    /// Every rule's outcome, then the decision (for `policy explain`).
    pub fn explain(&self, vars: &Vars) -> (Vec<Outcome>, Decision) {
        let ctx = vars.context();
        let outcomes: Vec<Outcome> = self.rules.iter().map(|r| Outcome::from_result(r.program.execute(&ctx))).collect();
        let decision = decide_with(&self.rules, |r| {
            let i = self.rules.iter().position(|x| std::ptr::eq(x.as_ref(), r)).expect("rule of this list");
            outcomes[i].clone()
        });
        (outcomes, decision)
    }

    /// For listings: whether some values of the unknown arguments could make the decision
    /// "allow". `vars` has no `mcp.tool.arguments`. Only tools take arguments: for prompts
    /// and resources (`tool: false`) this is [`Rules::decide`].
    pub fn could_allow(&self, vars: &Vars, tool: bool) -> bool {
        if !tool || !self.uses_arguments() {
            return self.decide(vars).allowed;
        }
        let ctx = vars.context();
        let outcome = |r: &Rule| {
            if r.uses_arguments {
                eval3(r.program.expression(), &ctx)
            } else {
                Outcome::from_result(r.program.execute(&ctx))
            }
        };
        let mut has_allow = false;
        let mut some_allow_possible = false;
        for r in &self.rules {
            let o = outcome(r);
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

fn decide_with(rules: &[Arc<Rule>], mut outcome: impl FnMut(&Rule) -> Outcome) -> Decision {
    if rules.is_empty() {
        return Decision { allowed: true, rule: None, reason: Reason::NoRules };
    }
    for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.kind == RuleKind::Deny) {
        if outcome(r).is_true() {
            return Decision { allowed: false, rule: Some(i), reason: Reason::DenyMatched };
        }
    }
    for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.kind == RuleKind::Require) {
        if !outcome(r).is_true() {
            return Decision { allowed: false, rule: Some(i), reason: Reason::RequireFailed };
        }
    }
    let mut any_allow = false;
    for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.kind == RuleKind::Allow) {
        any_allow = true;
        if outcome(r).is_true() {
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
    let uses_arguments = reads_arguments(program.expression());
    Ok(Rule { kind, source: source.to_string(), uses_arguments, program })
}

fn describe_parse_errors(e: &cel::ParseErrors) -> String {
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

/// Identifiers used but not bound by a comprehension (macro) inside the rule.
fn free_variables<'a>(e: &'a IdedExpr, bound: &mut Vec<&'a str>, out: &mut HashSet<&'a str>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(&name.as_str()) {
                out.insert(name);
            }
        }
        Expr::Select(s) => free_variables(&s.operand, bound, out),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                free_variables(t, bound, out);
            }
            for a in &c.args {
                free_variables(a, bound, out);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| free_variables(x, bound, out)),
        Expr::Map(m) => m.entries.iter().for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => {
                free_variables(&me.key, bound, out);
                free_variables(&me.value, bound, out);
            }
            EntryExpr::StructField(f) => free_variables(&f.value, bound, out),
        }),
        Expr::Struct(s) => s.entries.iter().for_each(|entry| {
            if let EntryExpr::StructField(f) = &entry.expr {
                free_variables(&f.value, bound, out);
            }
        }),
        Expr::Comprehension(c) => {
            free_variables(&c.iter_range, bound, out);
            free_variables(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(&c.iter_var);
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2);
            }
            bound.push(&c.accu_var);
            free_variables(&c.loop_cond, bound, out);
            free_variables(&c.loop_step, bound, out);
            free_variables(&c.result, bound, out);
            bound.truncate(before);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The dotted path of a select chain rooted at an identifier (`mcp.tool.arguments.x`).
fn select_path(e: &IdedExpr) -> Option<Vec<&str>> {
    match &e.expr {
        Expr::Ident(name) => Some(vec![name.as_str()]),
        Expr::Select(s) if !s.test => {
            let mut p = select_path(&s.operand)?;
            p.push(&s.field);
            Some(p)
        }
        _ => None,
    }
}

/// Whether evaluating `e` could read `mcp.tool.arguments` (conservatively: `mcp` or
/// `mcp.tool` used whole counts too).
fn reads_arguments(e: &IdedExpr) -> bool {
    if let Some(path) = select_path(e) {
        return matches!(path.as_slice(), ["mcp"] | ["mcp", "tool"] | ["mcp", "tool", "arguments", ..]);
    }
    match &e.expr {
        Expr::Select(s) => reads_arguments(&s.operand),
        Expr::Call(c) => c.target.as_deref().is_some_and(reads_arguments) || c.args.iter().any(reads_arguments),
        Expr::List(l) => l.elements.iter().any(reads_arguments),
        Expr::Map(m) => m.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => reads_arguments(&me.key) || reads_arguments(&me.value),
            EntryExpr::StructField(f) => reads_arguments(&f.value),
        }),
        Expr::Struct(s) => s.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::StructField(f) => reads_arguments(&f.value),
            EntryExpr::MapEntry(me) => reads_arguments(&me.value),
        }),
        Expr::Comprehension(c) => {
            [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result].iter().any(|x| reads_arguments(x))
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// Three-valued evaluation: logic operators combine outcomes; any other sub-expression that
/// reads the arguments is unknown, the rest is evaluated by CEL.
fn eval3(e: &IdedExpr, ctx: &Context<'_, '_>) -> Outcome {
    if let Expr::Call(c) = &e.expr {
        match (c.func_name.as_str(), c.args.as_slice()) {
            (f, [a, b]) if f == LOGICAL_AND => {
                let (x, y) = (eval3(a, ctx), eval3(b, ctx));
                return match (&x, &y) {
                    (Outcome::False, _) | (_, Outcome::False) => Outcome::False,
                    (Outcome::Unknown, _) | (_, Outcome::Unknown) => Outcome::Unknown,
                    (Outcome::Error(m), _) | (_, Outcome::Error(m)) => Outcome::Error(m.clone()),
                    (Outcome::True, Outcome::True) => Outcome::True,
                };
            }
            (f, [a, b]) if f == LOGICAL_OR => {
                let (x, y) = (eval3(a, ctx), eval3(b, ctx));
                return match (&x, &y) {
                    (Outcome::True, _) | (_, Outcome::True) => Outcome::True,
                    (Outcome::Unknown, _) | (_, Outcome::Unknown) => Outcome::Unknown,
                    (Outcome::Error(m), _) | (_, Outcome::Error(m)) => Outcome::Error(m.clone()),
                    (Outcome::False, Outcome::False) => Outcome::False,
                };
            }
            (f, [a]) if f == LOGICAL_NOT => {
                return match eval3(a, ctx) {
                    Outcome::True => Outcome::False,
                    Outcome::False => Outcome::True,
                    other => other,
                };
            }
            (f, [cond, then, otherwise]) if f == CONDITIONAL => {
                return match eval3(cond, ctx) {
                    Outcome::True => eval3(then, ctx),
                    Outcome::False => eval3(otherwise, ctx),
                    Outcome::Unknown => match (eval3(then, ctx), eval3(otherwise, ctx)) {
                        (a, b) if a == b => a,
                        _ => Outcome::Unknown,
                    },
                    err => err,
                };
            }
            _ => {}
        }
    }
    if reads_arguments(e) { Outcome::Unknown } else { Outcome::from_result(Value::resolve(e, ctx)) }
}

/// The inputs of one evaluation, as CEL values.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub jwt: Option<Value>,
    pub mcp: Option<Value>,
    pub request: Option<Value>,
    pub source: Option<Value>,
    pub api_key: Option<Value>,
    pub basic_auth: Option<Value>,
}

fn empty_map() -> Value {
    Value::Map(std::collections::HashMap::<String, Value>::new().into())
}

impl Vars {
    /// A CEL context with every variable bound (missing ones as empty maps, so `has(jwt.sub)`
    /// is false rather than an error).
    fn context(&self) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(env());
        for (name, v) in [
            ("jwt", &self.jwt),
            ("mcp", &self.mcp),
            ("request", &self.request),
            ("source", &self.source),
            ("apiKey", &self.api_key),
            ("basicAuth", &self.basic_auth),
        ] {
            ctx.add_variable_from_value(name, v.clone().unwrap_or_else(empty_map));
        }
        ctx
    }
}

/// Converts JSON (claims, arguments, metadata) to a CEL value.
pub fn to_cel(v: &serde_json::Value) -> Value {
    cel::to_value(v).unwrap_or(Value::Null)
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
pub fn mcp_value(
    method: &str,
    kind: ItemKind,
    name: &str,
    target: &str,
    arguments: Option<&serde_json::Value>,
) -> Value {
    let mut item = serde_json::Map::new();
    item.insert("name".into(), name.into());
    item.insert("target".into(), target.into());
    if let Some(a) = arguments {
        item.insert("arguments".into(), a.clone());
    }
    let mut mcp = serde_json::Map::new();
    mcp.insert("method".into(), method.into());
    mcp.insert(kind.field().into(), serde_json::Value::Object(item));
    to_cel(&serde_json::Value::Object(mcp))
}

#[cfg(test)]
mod tests;
