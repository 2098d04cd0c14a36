//! Names across targets: `<target>_<tool>`, `<target>_<prompt>`, `<target>+<uri>`; split at
//! the first separator (target names contain neither `_` nor `+`).

/// When names carry a target prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrefixMode {
    /// Prefix with two or more targets.
    #[default]
    Conditional,
    Always,
    /// Never prefix: names must be unique across targets.
    Never,
}

/// Which separator a kind of name uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sep {
    /// Tools and prompts: `_`.
    Name,
    /// Resource URIs and URI templates: `+`.
    Uri,
}

impl Sep {
    fn char(self) -> char {
        match self {
            Sep::Name => '_',
            Sep::Uri => '+',
        }
    }
}

/// Prefixing, as decided for a backend.
#[derive(Debug, Clone)]
pub struct Naming {
    pub prefix: bool,
    pub targets: Vec<String>,
}

impl Naming {
    pub fn new(mode: PrefixMode, targets: Vec<String>) -> Naming {
        let prefix = match mode {
            PrefixMode::Always => true,
            PrefixMode::Never => false,
            PrefixMode::Conditional => targets.len() > 1,
        };
        Naming { prefix, targets }
    }

    /// The name a client sees for `name` of `target`.
    pub fn expose(&self, target: &str, name: &str, sep: Sep) -> String {
        if self.prefix { format!("{target}{}{name}", sep.char()) } else { name.to_string() }
    }

    /// The target index and upstream name for an exposed name, when prefixing. `None` if it
    /// names no target.
    pub fn split<'a>(&self, exposed: &'a str, sep: Sep) -> Option<(usize, &'a str)> {
        let (target, rest) = exposed.split_once(sep.char())?;
        let idx = self.targets.iter().position(|t| t == target)?;
        Some((idx, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixing_and_splitting() {
        let n = Naming::new(PrefixMode::Conditional, vec!["a".into(), "b-2".into()]);
        assert_eq!(n.expose("b-2", "get_sum", Sep::Name), "b-2_get_sum");
        assert_eq!(n.split("b-2_get_sum", Sep::Name), Some((1, "get_sum")), "split at the first separator");
        assert_eq!(n.split("c_x", Sep::Name), None);
        assert_eq!(n.expose("a", "file:///x+y", Sep::Uri), "a+file:///x+y");
        assert_eq!(n.split("a+file:///x+y", Sep::Uri), Some((0, "file:///x+y")));
        assert!(!Naming::new(PrefixMode::Conditional, vec!["a".into()]).prefix);
        assert!(Naming::new(PrefixMode::Always, vec!["a".into()]).prefix);
        assert!(!Naming::new(PrefixMode::Never, vec!["a".into(), "b".into()]).prefix);
    }
}
