//! What a rule's syntax tree says before any request: which variables it uses, whether it
//! reads tool arguments, which item names can make it true; and three-valued evaluation for
//! listings.

use std::collections::HashSet;

use cel::Context;
use cel::common::ast::operators::{CONDITIONAL, EQUALS, IN, LOGICAL_AND, LOGICAL_NOT, LOGICAL_OR};
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::objects::Value;

use super::{ItemKind, Outcome};

/// Identifiers used but not bound by a comprehension (macro) inside the rule.
pub(crate) fn free_variables<'a>(e: &'a IdedExpr, bound: &mut Vec<&'a str>, out: &mut HashSet<&'a str>) {
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
pub(super) fn select_path(e: &IdedExpr) -> Option<Vec<&str>> {
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
pub(super) fn reads_arguments(e: &IdedExpr) -> bool {
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
pub(super) fn eval3(e: &IdedExpr, ctx: &Context<'_, '_>) -> Outcome {
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
                    // Even when both branches agree, a condition that reads arguments can also
                    // fail (a missing key), which is neither branch.
                    Outcome::Unknown => Outcome::Unknown,
                    err => err,
                };
            }
            _ => {}
        }
    }
    if reads_arguments(e) { Outcome::Unknown } else { Outcome::from_result(Value::resolve(e, ctx)) }
}

/// Item names a rule can be true for: from top-level `&&` conjuncts of the form
/// `mcp.<kind>.name == "x"` or `mcp.<kind>.name in ["x", "y"]`. `None` when the rule has no
/// such conjunct. For any other item the conjunct is false (or an error, for another kind),
/// so the rule is not true — which is all a decision asks of a rule.
pub(super) fn name_guard(e: &IdedExpr) -> Option<(ItemKind, HashSet<String>)> {
    let mut conjuncts = Vec::new();
    flatten_and(e, &mut conjuncts);
    let mut guard: Option<(ItemKind, HashSet<String>)> = None;
    for c in conjuncts {
        let Some((kind, names)) = conjunct_guard(c) else { continue };
        guard = Some(match guard {
            None => (kind, names),
            Some((k, prev)) if k == kind => (k, prev.intersection(&names).cloned().collect()),
            // Two kinds at once can never both be the item: never true.
            Some((k, _)) => (k, HashSet::new()),
        });
    }
    guard
}

/// Whether every top-level `&&` conjunct is a name guard: then the rule is true exactly for
/// the guard's items (of its kind), and false for every other.
pub(super) fn guard_is_whole(e: &IdedExpr) -> bool {
    let mut conjuncts = Vec::new();
    flatten_and(e, &mut conjuncts);
    conjuncts.iter().all(|c| conjunct_guard(c).is_some())
}

fn flatten_and<'a>(e: &'a IdedExpr, out: &mut Vec<&'a IdedExpr>) {
    match &e.expr {
        Expr::Call(c) if c.func_name == LOGICAL_AND && c.args.len() == 2 => {
            flatten_and(&c.args[0], out);
            flatten_and(&c.args[1], out);
        }
        _ => out.push(e),
    }
}

fn name_path(e: &IdedExpr) -> Option<ItemKind> {
    match select_path(e)?.as_slice() {
        ["mcp", "tool", "name"] => Some(ItemKind::Tool),
        ["mcp", "prompt", "name"] => Some(ItemKind::Prompt),
        ["mcp", "resource", "name"] => Some(ItemKind::Resource),
        _ => None,
    }
}

fn string_literal(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
        _ => None,
    }
}

fn conjunct_guard(c: &IdedExpr) -> Option<(ItemKind, HashSet<String>)> {
    let Expr::Call(call) = &c.expr else { return None };
    match (call.func_name.as_str(), call.args.as_slice()) {
        (f, [a, b]) if f == EQUALS => {
            let (kind, lit) = match (name_path(a), name_path(b)) {
                (Some(k), None) => (k, string_literal(b)?),
                (None, Some(k)) => (k, string_literal(a)?),
                _ => return None,
            };
            Some((kind, HashSet::from([lit])))
        }
        (f, [a, b]) if f == IN => {
            let kind = name_path(a)?;
            let Expr::List(list) = &b.expr else { return None };
            let names: Option<HashSet<String>> = list.elements.iter().map(string_literal).collect();
            Some((kind, names?))
        }
        _ => None,
    }
}

/// Whether the rule reads `mcp` at all (if not, its value is the same for every item).
pub(super) fn reads_mcp(e: &IdedExpr) -> bool {
    let mut free = HashSet::new();
    free_variables(e, &mut Vec::new(), &mut free);
    free.contains("mcp")
}
