//! YAML text → JSON value, keeping where every key and value came from.
//!
//! serde never sees YAML directly: the document is parsed once into a tree that remembers the
//! position of each node, converted to a `serde_json::Value` for deserialisation, and the tree is
//! kept so that any error that names a field path (from serde or from validation later) can be
//! pointed at a line and column.
//!
//! `$VAR` references are expanded here, in each scalar's text (keys included), when the
//! document is parsed for a config (see `expand.rs`): nodes keep their positions in the file
//! as written, and each remembers what it was before, so that errors show `$VAR`, never its
//! value.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{FieldPath, Segment};
use crate::expand::{self, Expanded, Lookup};

/// Nodes beyond this count (after alias expansion) make the document invalid: a few anchors
/// referencing each other can otherwise expand into billions of nodes.
const MAX_NODES: usize = 1_000_000;
/// Nesting beyond this depth is refused (deep recursion in conversion and in serde).
const MAX_DEPTH: usize = 128;
/// Unset variables reported at once; more are summed up in the last message.
const MAX_UNSET_REPORTED: usize = 20;
/// Most bytes of scalars with variables, after expansion, all together: a short file
/// repeating a reference to a long value must not grow without bound.
const MAX_EXPANDED_BYTES: usize = 64 * 1024 * 1024;

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos { line: m.line(), col: m.col() + 1 }
    }
}

#[derive(Clone)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    /// Keys keep their own position so that "unknown field" errors point at the key.
    Map(Vec<(String, Pos, Node)>),
}

#[derive(Clone)]
struct Node {
    pos: Pos,
    kind: Kind,
    /// `$VAR` expansions in this scalar, or in this mapping's keys.
    expansions: Vec<Expansion>,
}

/// A scalar whose text had `$VAR` references: as written, and after expansion.
#[derive(Clone)]
struct Expansion {
    written: String,
    expanded: Expanded,
}

/// The parsed document: its JSON value plus a position index. Its `Debug` shows no values:
/// they may hold secrets.
#[derive(Clone)]
pub struct Source {
    root: Option<Node>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source { .. }")
    }
}

/// A problem in the YAML text itself (before any field is looked at), or a variable that
/// is not set.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    /// The field an unset variable is in; `None` for YAML syntax errors.
    pub path: Option<FieldPath>,
    pub message: String,
}

impl Source {
    /// Parses `text` as it is. An empty document is `null`.
    pub fn parse(text: &str) -> Result<Source, SyntaxError> {
        Source::parse_with(text, None).map_err(|errors| {
            let unknown = || SyntaxError { pos: Pos { line: 1, col: 1 }, path: None, message: "invalid YAML".into() };
            errors.into_iter().next().unwrap_or_else(unknown)
        })
    }

    /// Parses `text`, expanding `$VAR` references in every scalar with `vars`. Every unset
    /// variable is reported (up to 20), each at its reference in the text.
    pub fn parse_expanding(text: &str, vars: Lookup<'_>) -> Result<Source, Vec<SyntaxError>> {
        Source::parse_with(text, Some(vars))
    }

    fn parse_with(text: &str, vars: Option<Lookup<'_>>) -> Result<Source, Vec<SyntaxError>> {
        let mut builder = Builder {
            text,
            vars,
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            nodes: 0,
            error: None,
            unset: Vec::new(),
            unset_total: 0,
            expanded_bytes: 0,
        };
        let mut parser = Parser::new_from_str(text);
        if let Err(e) = parser.load(&mut builder, false) {
            let pos = (*e.marker()).into();
            return Err(vec![SyntaxError { pos, path: None, message: e.info().to_string() }]);
        }
        if let Some(err) = builder.error {
            return Err(vec![err]);
        }
        if !builder.unset.is_empty() {
            let mut errors = builder.unset;
            let more = builder.unset_total - errors.len();
            if more > 0
                && let Some(last) = errors.last_mut()
            {
                last.message.push_str(&format!(" ({more} more unset variables not shown)"));
            }
            return Err(errors);
        }
        Ok(Source { root: builder.root })
    }

    /// The document as a JSON value.
    pub fn to_value(&self) -> Value {
        self.root.as_ref().map(to_value).unwrap_or(Value::Null)
    }

    /// The position of the node at `path`, or of its nearest existing ancestor.
    /// For a map entry the position is the key's, which is where a reader looks first.
    pub fn locate(&self, path: &FieldPath) -> Pos {
        self.find(path).map_or(Pos { line: 1, col: 1 }, |(pos, _)| pos)
    }

    /// `message`, about the node at `path` (or its nearest existing ancestor), with every
    /// value that came from a variable in that node's subtree shown as written (`$VAR`) or
    /// redacted.
    pub fn redact(&self, path: &FieldPath, message: String) -> String {
        let Some((_, node)) = self.find(path) else { return message };
        let mut found = Vec::new();
        collect_expansions(node, &mut found);
        if found.is_empty() {
            return message;
        }
        let pairs: Vec<(&str, &Expanded)> = found.iter().map(|e| (e.written.as_str(), &e.expanded)).collect();
        expand::redact_message(&message, &pairs)
    }

    fn find(&self, path: &FieldPath) -> Option<(Pos, &Node)> {
        let mut node = self.root.as_ref()?;
        let mut pos = node.pos;
        for seg in path.segments() {
            let next = match (seg, &node.kind) {
                (Segment::Key(k), Kind::Map(entries)) => {
                    entries.iter().find(|(name, _, _)| name == k).map(|(_, kp, n)| (*kp, n))
                }
                (Segment::Index(i), Kind::Seq(items)) => items.get(*i).map(|n| (n.pos, n)),
                _ => None,
            };
            match next {
                Some((p, n)) => {
                    pos = p;
                    node = n;
                }
                None => break,
            }
        }
        Some((pos, node))
    }
}

fn collect_expansions<'a>(node: &'a Node, out: &mut Vec<&'a Expansion>) {
    out.extend(node.expansions.iter());
    match &node.kind {
        Kind::Scalar(_) => {}
        Kind::Seq(items) => items.iter().for_each(|n| collect_expansions(n, out)),
        Kind::Map(entries) => entries.iter().for_each(|(_, _, n)| collect_expansions(n, out)),
    }
}

fn to_value(node: &Node) -> Value {
    match &node.kind {
        Kind::Scalar(v) => v.clone(),
        Kind::Seq(items) => Value::Array(items.iter().map(to_value).collect()),
        Kind::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, _, v) in entries {
                map.insert(k.clone(), to_value(v));
            }
            Value::Object(map)
        }
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema; quoted scalars are always strings.
fn scalar_value(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag
        && tag.handle == "!!"
        && tag.suffix == "str"
    {
        return Ok(Value::String(text));
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => {
            if let Some(n) = parse_int(&text) {
                Value::Number(n.into())
            } else if is_inf_or_nan(&text) {
                return Err(format!("`{text}` is not a finite number"));
            } else if let Some(n) = parse_float(&text) {
                Value::Number(n)
            } else {
                Value::String(text)
            }
        }
    })
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn is_inf_or_nan(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    matches!(body, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
}

/// YAML 1.2 core floats: digits with a `.` and/or an exponent (`1.5`, `.5`, `1e3`).
fn parse_float(s: &str) -> Option<Number> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let numeric = body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !numeric || !body.bytes().any(|b| b.is_ascii_digit()) || !body.contains(['.', 'e', 'E']) {
        return None;
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    /// `keys` holds the keys of `entries`: a mapping can have many, and finding duplicates by
    /// scanning `entries` made loading quadratic (100,000 keys took minutes).
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(String, Pos, Node)>,
        keys: HashSet<String>,
        key: Option<(String, Pos)>,
        key_expansions: Vec<Expansion>,
    },
}

struct Builder<'a> {
    text: &'a str,
    /// `None`: no `$VAR` expansion.
    vars: Option<Lookup<'a>>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
    error: Option<SyntaxError>,
    unset: Vec<SyntaxError>,
    unset_total: usize,
    expanded_bytes: usize,
}

impl Builder<'_> {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { pos, path: None, message: message.into() });
        }
    }

    /// The scalar's text after `$VAR` expansion, and what to remember about it. An unset
    /// variable is recorded (the text then stays as written, so that parsing goes on and
    /// finds the others).
    fn expand(&mut self, text: String, mark: Marker) -> (String, Option<Expansion>) {
        let Some(vars) = self.vars else { return (text, None) };
        let room = MAX_EXPANDED_BYTES.saturating_sub(self.expanded_bytes);
        match expand::expand(&text, vars, room) {
            Ok(None) => (text, None),
            Ok(Some(expanded)) => {
                self.expanded_bytes = self.expanded_bytes.saturating_add(expanded.text.len());
                (expanded.text.clone(), Some(Expansion { written: text, expanded }))
            }
            Err(expand::Failure::TooLong) => {
                self.fail(Pos::from(mark), "document too large (variables expand to more than 64 MiB)");
                (text, None)
            }
            Err(expand::Failure::Unset(unset)) => {
                // The path is worked out only for reported variables: a document with a
                // million unset references must not build a million paths.
                let mut path = None;
                let mut from = None;
                for u in unset {
                    self.unset_total += 1;
                    if self.unset.len() >= MAX_UNSET_REPORTED {
                        continue;
                    }
                    let path = path.get_or_insert_with(|| self.path_here()).clone();
                    let pos = self.reference_pos(mark, text.len(), &u.reference, &mut from);
                    let message = format!(
                        "environment variable `{}` is not set (referenced as `{}`; write `${{{}:-default}}` for a default, or `$$` for a literal `$`)",
                        u.name, u.reference, u.name
                    );
                    self.unset.push(SyntaxError { pos, path: Some(path), message });
                }
                (text, None)
            }
        }
    }

    /// The field path of the scalar being read (for a mapping key: the mapping's path).
    fn path_here(&self) -> FieldPath {
        let mut path = FieldPath::root();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => path = path.index(items.len()),
                Frame::Map { key: Some((k, _)), .. } => path = path.key(k),
                Frame::Map { key: None, .. } => break,
            }
        }
        path
    }

    /// Where `reference` is written in the file: searched for from the scalar's start (or
    /// after the previous reference of the same scalar), no further than the scalar's text
    /// could reach with escapes. Not found (an escaped `$`): the scalar's start.
    fn reference_pos(&self, mark: Marker, len: usize, reference: &str, from: &mut Option<usize>) -> Pos {
        let scalar_start = Pos::from(mark);
        let Some(start) = from.or_else(|| self.text.char_indices().nth(mark.index()).map(|(b, _)| b)) else {
            return scalar_start;
        };
        let mut end = start.saturating_add(len.saturating_mul(10)).saturating_add(64).min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let Some(found) = self.text[start..end].find(reference).map(|i| start + i) else {
            return scalar_start;
        };
        *from = Some(found + reference.len());
        let Some(mark_byte) = self.text.char_indices().nth(mark.index()).map(|(b, _)| b) else {
            return scalar_start;
        };
        let between = &self.text[mark_byte..found];
        match between.rfind('\n') {
            None => Pos { line: scalar_start.line, col: scalar_start.col + between.chars().count() },
            Some(nl) => Pos {
                line: scalar_start.line + between.matches('\n').count(),
                col: between[nl + 1..].chars().count() + 1,
            },
        }
    }

    fn count(&mut self, pos: Pos, n: usize) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(pos, "document too large (more than 1,000,000 nodes after expanding aliases)");
            return false;
        }
        true
    }

    /// Places a finished node in its parent (or as the document root).
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, keys, key, key_expansions, .. }) => match key.take() {
                None => {
                    let key_pos = node.pos;
                    key_expansions.extend(node.expansions);
                    match node.kind {
                        Kind::Scalar(Value::String(s)) => *key = Some((s, key_pos)),
                        Kind::Scalar(Value::Null) => *key = Some(("null".into(), key_pos)),
                        Kind::Scalar(v) => *key = Some((v.to_string(), key_pos)),
                        _ => self.fail(key_pos, "mapping keys must be plain values, not lists or maps"),
                    }
                }
                Some((k, key_pos)) => {
                    if !keys.insert(k.clone()) {
                        self.fail(key_pos, format!("duplicate key `{k}`"));
                    } else {
                        entries.push((k, key_pos, node));
                    }
                }
            },
        }
    }
}

fn earlier(a: Pos, b: Pos) -> Pos {
    if (b.line, b.col) < (a.line, a.col) { b } else { a }
}

fn subtree_size(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar(_) => 1,
        Kind::Seq(items) => 1 + items.iter().map(subtree_size).sum::<usize>(),
        Kind::Map(entries) => 1 + entries.iter().map(|(_, _, n)| 1 + subtree_size(n)).sum::<usize>(),
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if !self.count(pos, 1) {
                    return;
                }
                let (text, expansion) = self.expand(text, mark);
                let expansions = expansion.into_iter().collect();
                match scalar_value(text, style, tag.as_ref()) {
                    Ok(v) => self.push(Node { pos, kind: Kind::Scalar(v), expansions }, anchor),
                    Err(msg) => self.fail(pos, msg),
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(pos, "document nested too deeply (more than 128 levels)");
                    return;
                }
                if !self.count(pos, 1) {
                    return;
                }
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq { pos, anchor, items: Vec::new() }
                } else {
                    Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        keys: HashSet::new(),
                        key: None,
                        key_expansions: Vec::new(),
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => {
                    self.push(Node { pos, kind: Kind::Seq(items), expansions: Vec::new() }, anchor)
                }
                Some(Frame::Map { pos, anchor, entries, key_expansions, .. }) => {
                    // A block mapping's start event is marked after its first key; the key is
                    // where a reader expects the mapping to begin.
                    let pos = entries.first().map_or(pos, |(_, kp, _)| earlier(pos, *kp));
                    self.push(Node { pos, kind: Kind::Map(entries), expansions: key_expansions }, anchor)
                }
                None => self.fail(pos, "unbalanced collection end"),
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    if !self.count(pos, subtree_size(&node)) {
                        return;
                    }
                    node.pos = pos;
                    self.push(node, 0);
                }
                None => self.fail(pos, "alias refers to an unknown anchor"),
            },
            Event::DocumentStart => {
                if self.root.is_some() {
                    self.fail(pos, "only one YAML document is allowed");
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_follow_the_core_schema() {
        let src = Source::parse("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: yes\ng: 0x10\nh: -3\n").unwrap();
        assert_eq!(
            src.to_value(),
            json!({"a": 1, "b": "1", "c": true, "d": null, "e": 1.5, "f": "yes", "g": 16, "h": -3})
        );
    }

    #[test]
    fn locates_keys_and_items() {
        let text = "binds:\n- port: 3000\n  listeners:\n  - routes: []\n";
        let src = Source::parse(text).unwrap();
        let path = FieldPath::root().key("binds").index(0).key("listeners").index(0).key("routes");
        assert_eq!(src.locate(&path), Pos { line: 4, col: 5 });
        let missing = FieldPath::root().key("binds").index(0).key("nope");
        assert_eq!(src.locate(&missing), Pos { line: 2, col: 3 });
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = Source::parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.message.contains("duplicate key `a`"));
    }

    /// Found while writing the `config` fuzz target: duplicates were found by scanning every
    /// earlier key, so a mapping of 100,000 keys (1.4 MB, far under the size limit) took
    /// minutes to load.
    #[test]
    fn duplicate_keys_are_found_among_many_keys() {
        let n = 200_000;
        let mut text: String = (0..n).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k7: again\n");
        let err = Source::parse(&text).unwrap_err();
        assert_eq!(err.pos, Pos { line: n + 1, col: 1 });
        assert!(err.message.contains("duplicate key `k7`"), "{}", err.message);
    }

    #[test]
    fn aliases_expand_but_bombs_are_refused() {
        let src = Source::parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(src.to_value(), json!({"a": [1, 2], "b": [1, 2]}));

        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = Source::parse(&bomb).unwrap_err();
        assert!(err.message.contains("too large"), "{}", err.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(500) + &"]".repeat(500);
        let err = Source::parse(&text).unwrap_err();
        assert!(err.message.contains("deep") || err.message.contains("recursion"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Source::parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn floats_and_strings_that_look_numeric() {
        let src = Source::parse("a: 1e3\nb: 1.2.3\nc: 10s\nd: .5\n").unwrap();
        assert_eq!(src.to_value(), json!({"a": 1000.0, "b": "1.2.3", "c": "10s", "d": 0.5}));
    }
}
