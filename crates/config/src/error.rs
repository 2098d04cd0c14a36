//! Config errors that say where: file, line, column and the field path.

use std::fmt;

use crate::source::Pos;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the config document such as `binds[0].listeners[1].routes[0].policies.cors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    #[must_use]
    pub fn key(&self, key: &str) -> FieldPath {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    #[must_use]
    pub fn index(&self, i: usize) -> FieldPath {
        let mut next = self.clone();
        next.0.push(Segment::Index(i));
        next
    }

    /// `self` followed by the segments of `rest`.
    #[must_use]
    pub fn join(&self, rest: &FieldPath) -> FieldPath {
        let mut next = self.clone();
        next.0.extend(rest.0.iter().cloned());
        next
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The first `n` segments.
    #[must_use]
    pub fn prefix(&self, n: usize) -> FieldPath {
        FieldPath(self.0[..n.min(self.0.len())].to_vec())
    }

    /// The rest of `self` after `prefix`, when `self` starts with it.
    pub fn strip_prefix(&self, prefix: &FieldPath) -> Option<FieldPath> {
        self.0.starts_with(&prefix.0).then(|| FieldPath(self.0[prefix.0.len()..].to_vec()))
    }

    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> FieldPath {
        use serde_path_to_error::Segment as S;
        let mut out = FieldPath::root();
        for seg in path.iter() {
            match seg {
                S::Seq { index } => out.0.push(Segment::Index(*index)),
                S::Map { key } => out.0.push(Segment::Key(key.clone())),
                S::Enum { variant } => out.0.push(Segment::Key(variant.clone())),
                S::Unknown => {}
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem found at one field, before its position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: FieldPath,
    pub message: String,
}

impl FieldError {
    pub fn new(path: FieldPath, message: impl Into<String>) -> FieldError {
        FieldError { path, message: message.into() }
    }

    /// The standard error for a field that agentgateway has and this gateway does not yet.
    pub fn not_supported(path: FieldPath) -> FieldError {
        FieldError::new(path, "not supported yet")
    }
}

/// A located config error: `config.yaml:12:9: binds[0].port: expected a port number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// `None` for YAML syntax errors, which are not about a field.
    pub path: Option<FieldPath>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(file: &str, pos: Pos, path: Option<FieldPath>, message: String) -> Self {
        ConfigError { file: file.to_string(), line: pos.line, col: pos.col, path, message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// One or more config errors, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
