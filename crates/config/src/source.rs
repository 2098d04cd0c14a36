//! YAML text → JSON value, keeping where every key and value came from.
//!
//! serde never sees YAML directly: the document is parsed once into a tree that remembers the
//! position of each node, converted to a `serde_json::Value` for deserialisation, and the tree is
//! kept so that any error that names a field path (from serde or from validation later) can be
//! pointed at a line and column.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{FieldPath, Segment};

/// Nodes beyond this count (after alias expansion) make the document invalid: a few anchors
/// referencing each other can otherwise expand into billions of nodes.
const MAX_NODES: usize = 1_000_000;
/// Nesting beyond this depth is refused (deep recursion in conversion and in serde).
const MAX_DEPTH: usize = 128;

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

#[derive(Debug, Clone)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    /// Keys keep their own position so that "unknown field" errors point at the key.
    Map(Vec<(String, Pos, Node)>),
}

#[derive(Debug, Clone)]
struct Node {
    pos: Pos,
    kind: Kind,
}

/// The parsed document: its JSON value plus a position index.
#[derive(Debug, Clone)]
pub struct Source {
    root: Option<Node>,
}

/// A problem in the YAML text itself (before any field is looked at).
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl Source {
    /// Parses `text`. An empty document is `null`.
    pub fn parse(text: &str) -> Result<Source, SyntaxError> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if let Err(e) = parser.load(&mut builder, false) {
            return Err(SyntaxError { pos: (*e.marker()).into(), message: e.info().to_string() });
        }
        if let Some(err) = builder.error {
            return Err(err);
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
        let Some(mut node) = self.root.as_ref() else {
            return Pos { line: 1, col: 1 };
        };
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
        pos
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
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { pos, message: message.into() });
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
            Some(Frame::Map { entries, keys, key, .. }) => match key.take() {
                None => {
                    let key_pos = node.pos;
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

impl MarkedEventReceiver for Builder {
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
                match scalar_value(text, style, tag.as_ref()) {
                    Ok(v) => self.push(Node { pos, kind: Kind::Scalar(v) }, anchor),
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
                    Frame::Map { pos, anchor, entries: Vec::new(), keys: HashSet::new(), key: None }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => self.push(Node { pos, kind: Kind::Seq(items) }, anchor),
                Some(Frame::Map { pos, anchor, entries, .. }) => {
                    // A block mapping's start event is marked after its first key; the key is
                    // where a reader expects the mapping to begin.
                    let pos = entries.first().map_or(pos, |(_, kp, _)| earlier(pos, *kp));
                    self.push(Node { pos, kind: Kind::Map(entries) }, anchor)
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
