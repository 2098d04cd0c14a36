//! The decision table, rule by rule kind, with and without claims, for calls and listings.

use serde_json::json;

use super::*;

fn rules(raw: &[RawRule]) -> Rules {
    Rules::compile(raw).unwrap_or_else(|e| panic!("{e:?}"))
}

fn allow(s: &str) -> RawRule {
    RawRule::Allow(s.into())
}
fn deny(s: &str) -> RawRule {
    RawRule::Deny(s.into())
}
fn require(s: &str) -> RawRule {
    RawRule::Require(s.into())
}

fn example1() -> serde_json::Value {
    json!({"iss": "agentgateway.dev", "sub": "test-user", "nested": {"key": "value"}, "field1": "value1",
           "list": ["apple", "banana"], "roles": ["admin", "dev"], "email": "a@company.com", "level": 3})
}

fn example2() -> serde_json::Value {
    json!({"iss": "agentgateway.dev", "sub": "test-user"})
}

/// A request about one MCP item.
struct Req {
    vars: Vars,
    method: &'static str,
    kind: ItemKind,
    name: String,
    args: Option<serde_json::Value>,
}

impl Req {
    fn item(&self) -> McpItem<'_> {
        McpItem { method: self.method, kind: self.kind, name: &self.name, target: "mcp", arguments: self.args.as_ref() }
    }

    /// Decides through the fast path (`prepare`) and the full one (`explain`); they agree.
    fn decide(&self, rules: &Rules) -> Decision {
        let fast = rules.prepare(self.vars.clone()).decide(&self.item());
        let (outcomes, full) = rules.explain(&self.vars, Some(&self.item()));
        assert_eq!(fast, full, "prepared and explained decisions differ");
        assert_eq!(outcomes.len(), rules.len());
        fast
    }

    /// Listing: arguments unknown.
    fn listed(&self, rules: &Rules) -> bool {
        let mut item = self.item();
        item.arguments = None;
        rules.prepare(self.vars.clone()).could_allow(&item)
    }
}

fn vars(claims: Option<serde_json::Value>, kind: ItemKind, name: &str, args: Option<serde_json::Value>) -> Req {
    let method = match kind {
        ItemKind::Tool => "tools/call",
        ItemKind::Prompt => "prompts/get",
        ItemKind::Resource => "resources/read",
    };
    let vars = Vars {
        jwt: claims.as_ref().map(to_cel),
        request: Some(to_cel(
            &json!({"method": "POST", "path": "/mcp", "host": "localhost", "headers": {"x-team": "blue"}}),
        )),
        source: Some(to_cel(&json!({"address": "127.0.0.1", "port": 5555}))),
        api_key: None,
        basic_auth: None,
        extauthz: None,
        a2a: None,
    };
    Req { vars, method, kind, name: name.to_string(), args }
}

fn tool(claims: Option<serde_json::Value>, name: &str) -> Req {
    vars(claims, ItemKind::Tool, name, Some(json!({})))
}

const TUTORIAL: [&str; 3] = [
    r#"mcp.tool.name == "echo""#,
    r#"jwt.sub == "test-user" && mcp.tool.name == "add""#,
    r#"mcp.tool.name == "printEnv" && jwt.nested.key == "value""#,
];

fn tutorial() -> Rules {
    rules(&TUTORIAL.map(allow))
}

#[test]
fn decision_table() {
    let t = tutorial();
    // (rules, vars, allowed, deciding rule)
    let cases: Vec<(&str, Rules, Req, bool, Option<usize>)> = vec![
        // 1-9: the tutorial
        ("tutorial: anonymous echo", t.clone(), tool(None, "echo"), true, Some(0)),
        ("tutorial: anonymous add", t.clone(), tool(None, "add"), false, None),
        ("tutorial: anonymous printEnv", t.clone(), tool(None, "printEnv"), false, None),
        ("tutorial: example1 echo", t.clone(), tool(Some(example1()), "echo"), true, Some(0)),
        ("tutorial: example1 add", t.clone(), tool(Some(example1()), "add"), true, Some(1)),
        ("tutorial: example1 printEnv", t.clone(), tool(Some(example1()), "printEnv"), true, Some(2)),
        ("tutorial: example2 add", t.clone(), tool(Some(example2()), "add"), true, Some(1)),
        ("tutorial: example2 printEnv (no nested claim)", t.clone(), tool(Some(example2()), "printEnv"), false, None),
        ("tutorial: unknown tool", t.clone(), tool(Some(example1()), "rm"), false, None),
        // 10-12: no rules, only deny rules
        ("no rules", rules(&[]), tool(None, "anything"), true, None),
        ("deny only, not matching", rules(&[deny(r#"mcp.tool.name == "rm""#)]), tool(None, "ls"), true, None),
        ("deny only, matching", rules(&[deny(r#"mcp.tool.name == "rm""#)]), tool(None, "rm"), false, Some(0)),
        // 13-16: deny wins over allow, in any order
        (
            "deny beats allow",
            rules(&[allow("true"), deny(r#"mcp.tool.name == "rm""#)]),
            tool(None, "rm"),
            false,
            Some(1),
        ),
        (
            "deny beats allow, reversed",
            rules(&[deny(r#"mcp.tool.name == "rm""#), allow("true")]),
            tool(None, "rm"),
            false,
            Some(0),
        ),
        (
            "allow when deny does not match",
            rules(&[allow("true"), deny(r#"mcp.tool.name == "rm""#)]),
            tool(None, "ls"),
            true,
            Some(0),
        ),
        (
            "deny on a missing claim does not deny",
            rules(&[deny(r#"jwt.sub == "mallory""#)]),
            tool(None, "x"),
            true,
            None,
        ),
        // 17-21: require
        (
            "require true then allow",
            rules(&[require("has(jwt.sub)"), allow("true")]),
            tool(Some(example2()), "x"),
            true,
            Some(1),
        ),
        ("require false", rules(&[require("has(jwt.sub)"), allow("true")]), tool(None, "x"), false, Some(0)),
        (
            "require error counts as false",
            rules(&[require(r#"jwt.sub == "test-user""#)]),
            tool(None, "x"),
            false,
            Some(0),
        ),
        ("require only, true", rules(&[require(r#"jwt.sub == "test-user""#)]), tool(Some(example2()), "x"), true, None),
        (
            "two requires, one false",
            rules(&[require("true"), require(r#"jwt.level > 5"#)]),
            tool(Some(example1()), "x"),
            false,
            Some(1),
        ),
        // 22-27: the forms the tutorial documents
        ("nested claim", rules(&[allow(r#"jwt.nested.key == "value""#)]), tool(Some(example1()), "x"), true, Some(0)),
        ("in a list claim", rules(&[allow(r#""admin" in jwt.roles"#)]), tool(Some(example1()), "x"), true, Some(0)),
        (
            "in a list claim, absent",
            rules(&[allow(r#""admin" in jwt.roles"#)]),
            tool(Some(example2()), "x"),
            false,
            None,
        ),
        (
            "endsWith",
            rules(&[allow(r#"jwt.email.endsWith("@company.com")"#)]),
            tool(Some(example1()), "x"),
            true,
            Some(0),
        ),
        ("name in a list", rules(&[allow(r#"mcp.tool.name in ["a", "b"]"#)]), tool(None, "b"), true, Some(0)),
        ("name not in a list", rules(&[allow(r#"mcp.tool.name in ["a", "b"]"#)]), tool(None, "c"), false, None),
        // 28-30: errors and non-booleans never allow
        ("type error", rules(&[allow(r#"jwt.sub > 5"#)]), tool(Some(example1()), "x"), false, None),
        ("non-boolean result", rules(&[allow(r#"jwt.sub"#)]), tool(Some(example1()), "x"), false, None),
        (
            "error in one allow, another allows",
            rules(&[allow("jwt.nope.deeper"), allow("true")]),
            tool(None, "x"),
            true,
            Some(1),
        ),
        // 31-34: prompts and resources
        (
            "prompt allowed",
            rules(&[allow(r#"mcp.prompt.name == "greet""#)]),
            vars(None, ItemKind::Prompt, "greet", None),
            true,
            Some(0),
        ),
        (
            "prompt rule does not match a tool",
            rules(&[allow(r#"mcp.prompt.name == "greet""#)]),
            tool(None, "greet"),
            false,
            None,
        ),
        (
            "resource by uri",
            rules(&[allow(r#"mcp.resource.name.startsWith("file:///public/")"#)]),
            vars(None, ItemKind::Resource, "file:///public/a.txt", None),
            true,
            Some(0),
        ),
        (
            "resource denied",
            rules(&[allow(r#"mcp.resource.name.startsWith("file:///public/")"#)]),
            vars(None, ItemKind::Resource, "file:///etc/passwd", None),
            false,
            None,
        ),
        // 35-38: request, source, method, target
        ("request header", rules(&[allow(r#"request.headers["x-team"] == "blue""#)]), tool(None, "x"), true, Some(0)),
        ("source address", rules(&[deny(r#"source.address == "127.0.0.1""#)]), tool(None, "x"), false, Some(0)),
        ("mcp.method", rules(&[allow(r#"mcp.method == "tools/call""#)]), tool(None, "x"), true, Some(0)),
        ("target", rules(&[allow(r#"mcp.tool.target == "mcp""#)]), tool(None, "x"), true, Some(0)),
        // 39-42: arguments at call time
        (
            "argument allows",
            rules(&[allow(r#"mcp.tool.name == "get-env" && mcp.tool.arguments.name == "HOME""#)]),
            vars(None, ItemKind::Tool, "get-env", Some(json!({"name": "HOME"}))),
            true,
            Some(0),
        ),
        (
            "argument denies",
            rules(&[allow(r#"mcp.tool.name == "get-env" && mcp.tool.arguments.name == "HOME""#)]),
            vars(None, ItemKind::Tool, "get-env", Some(json!({"name": "SECRET"}))),
            false,
            None,
        ),
        (
            "missing argument is not true",
            rules(&[allow(r#"mcp.tool.arguments.name == "HOME""#)]),
            vars(None, ItemKind::Tool, "get-env", Some(json!({}))),
            false,
            None,
        ),
        (
            "deny on an argument",
            rules(&[allow("true"), deny(r#"mcp.tool.arguments.path.startsWith("/etc")"#)]),
            vars(None, ItemKind::Tool, "read", Some(json!({"path": "/etc/shadow"}))),
            false,
            Some(1),
        ),
        // 43-45: merged lists (listener + route)
        (
            "merged: deny anywhere wins",
            rules(&[allow("true")]).merged(&rules(&[deny(r#"mcp.tool.name == "rm""#)])),
            tool(None, "rm"),
            false,
            Some(1),
        ),
        (
            "merged: allows OR",
            rules(&[allow(r#"mcp.tool.name == "a""#)]).merged(&rules(&[allow(r#"mcp.tool.name == "b""#)])),
            tool(None, "b"),
            true,
            Some(1),
        ),
        (
            "merged: requires AND",
            rules(&[require("has(jwt.sub)")]).merged(&rules(&[require(r#"jwt.level > 5"#)])),
            tool(Some(example1()), "x"),
            false,
            Some(1),
        ),
    ];
    assert!(cases.len() >= 40);
    for (name, rules, req, allowed, rule) in cases {
        let d = req.decide(&rules);
        assert_eq!((d.allowed, d.rule), (allowed, rule), "{name}: {:?}", d);
    }
}

#[test]
fn listings_with_unknown_arguments() {
    let listing = |claims: Option<serde_json::Value>, name: &str| vars(claims, ItemKind::Tool, name, None);
    let r = rules(&[
        allow(r#"mcp.tool.name == "get-env" && mcp.tool.arguments.name == "HOME""#),
        allow(r#"mcp.tool.name == "echo""#),
    ]);
    assert!(r.uses_arguments());
    assert!(listing(None, "get-env").listed(&r), "some arguments could allow get-env");
    assert!(listing(None, "echo").listed(&r));
    assert!(!listing(None, "get-sum").listed(&r), "unknown && false is false");

    let r = rules(&[allow(r#"mcp.tool.arguments.x == 1 || mcp.tool.name == "a""#)]);
    assert!(listing(None, "a").listed(&r), "unknown || true is true");
    assert!(listing(None, "b").listed(&r), "unknown || false is unknown: listed");

    let r = rules(&[allow("true"), deny(r#"mcp.tool.name == "rm" && mcp.tool.arguments.force == true"#)]);
    assert!(listing(None, "rm").listed(&r), "a deny that only some arguments trigger does not hide the tool");
    let r = rules(&[allow("true"), deny(r#"mcp.tool.name == "rm" || mcp.tool.arguments.force == true"#)]);
    assert!(!listing(None, "rm").listed(&r), "a deny that is true whatever the arguments hides the tool");

    let r = rules(&[require(r#"jwt.sub == "admin" && mcp.tool.arguments.x == 1"#)]);
    assert!(!listing(Some(example2()), "t").listed(&r), "require false whatever the arguments");
    assert!(listing(Some(json!({"sub": "admin"})), "t").listed(&r));

    let r = rules(&[allow(r#"!(mcp.tool.arguments.x == 1) ? mcp.tool.name == "a" : mcp.tool.name == "a""#)]);
    assert!(listing(None, "a").listed(&r));
    // A condition on arguments can fail (no `x`), which is neither branch: unknown, so listed.
    assert!(listing(None, "b").listed(&r), "an unknown condition makes the choice unknown");
    let r = rules(&[allow(r#"mcp.tool.name == "a""#), deny("mcp.tool.arguments.x == 1 ? true : true")]);
    assert!(listing(None, "a").listed(&r), "the deny errors without `x`, so `a` can be called: listed");

    // Prompts have no arguments: a tool-argument rule is simply not true for them.
    let r = rules(&[allow(r#"mcp.tool.name == "c" && mcp.tool.arguments.mode == "safe""#)]);
    assert!(!vars(None, ItemKind::Prompt, "c", None).listed(&r));
}

#[test]
fn compile_errors_name_the_rule_and_column() {
    let errs = Rules::compile(&[
        allow("true"),
        allow(r#"mcp.tool.name == "#),
        allow("jwtt.sub == 'x'"),
        allow("x.exists(y, y == z)"),
    ])
    .unwrap_err();
    assert_eq!(errs.len(), 3);
    assert_eq!(errs[0].index, 1);
    assert!(errs[0].message.starts_with("invalid CEL at column 18"), "{}", errs[0].message);
    assert_eq!(errs[1].index, 2);
    assert_eq!(
        errs[1].message,
        "unknown variable `jwtt` (rules can use jwt, mcp, request, source, apiKey, basicAuth, extauthz, a2a)"
    );
    assert_eq!(errs[2].index, 3);
    assert!(errs[2].message.contains("`x`"), "{}", errs[2].message);
    // Comprehension variables are bound, not unknown.
    assert!(Rules::compile(&[allow(r#"jwt.roles.exists(r, r == "admin")"#)]).is_ok());
}

#[test]
fn only_the_variables_rules_read_are_needed() {
    let t = tutorial();
    assert!(t.uses().reads("jwt") && t.uses().reads("mcp"));
    assert!(!t.uses().reads("request") && !t.uses().reads("source") && !t.uses().reads("apiKey"));
    let http = rules(&[allow(r#"request.headers["x-team"] == "blue""#)]);
    assert!(http.uses().reads("request") && !http.uses().reads("jwt"));
    assert!(t.uses().union(http.uses()).reads("request"));
    // A rule bound to variables it does not read decides the same with them left out.
    let sparse = Vars { jwt: Some(to_cel(&json!({"sub": "test-user"}))), ..Vars::default() };
    let item = McpItem { method: "tools/call", kind: ItemKind::Tool, name: "add", target: "mcp", arguments: None };
    assert!(t.prepare(sparse).decide(&item).allowed);
}

#[test]
fn rules_that_are_only_name_checks_skip_cel_and_agree_with_it() {
    // `guard_is_whole`: decided by the name alone; the full evaluation (explain) agrees.
    let r =
        rules(&[allow(r#"mcp.tool.name == "echo""#), allow(r#"mcp.tool.name in ["a", "b"] && mcp.tool.name == "b""#)]);
    for (kind, name, allowed, rule) in [
        (ItemKind::Tool, "echo", true, Some(0)),
        (ItemKind::Tool, "b", true, Some(1)),
        (ItemKind::Tool, "a", false, None),
        (ItemKind::Prompt, "echo", false, None),
    ] {
        let d = vars(None, kind, name, Some(json!({}))).decide(&r);
        assert_eq!((d.allowed, d.rule), (allowed, rule), "{kind:?} {name}");
    }
}
