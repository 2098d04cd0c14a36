//! Names across targets: `<target>_<tool>`, `<target>_<prompt>`, `<target>+<uri>`; split at
//! the first separator (target names contain neither `_` nor `+`). MCP Apps' `ui://` URIs
//! carry the target in their authority instead: `ui://<target>+<authority>/…` (see
//! [`crate::apps`]).

use std::borrow::Cow;

use crate::apps::{self, Decoded};

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
    /// `ui://` URIs carry their target (as agentgateway does: with two or more targets, even
    /// under `prefixMode: never`, or when prefixing).
    pub ui_authority: bool,
    pub targets: Vec<String>,
}

/// Where a name a client sent goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Target index and the name the target knows.
    To(usize, Cow<'a, str>),
    /// Names carry no target here: find the one target that has it.
    Lookup,
    /// It names a target that does not exist (answered like a missing item).
    Unknown,
    /// It cannot name anything here; the message says why.
    Invalid(String),
}

impl Naming {
    pub fn new(mode: PrefixMode, targets: Vec<String>) -> Naming {
        let prefix = match mode {
            PrefixMode::Always => true,
            PrefixMode::Never => false,
            PrefixMode::Conditional => targets.len() > 1,
        };
        let ui_authority = prefix || targets.len() > 1;
        Naming { prefix, ui_authority, targets }
    }

    /// The name a client sees for `name` of `target`.
    pub fn expose(&self, target: &str, name: &str, sep: Sep) -> String {
        if sep == Sep::Uri
            && self.ui_authority
            && let Some(ui) = apps::encode(target, name)
        {
            return ui;
        }
        if self.prefix { format!("{target}{}{name}", sep.char()) } else { name.to_string() }
    }

    /// Where an exposed name goes: the reverse of [`Naming::expose`].
    pub fn route<'a>(&self, exposed: &'a str, sep: Sep) -> Route<'a> {
        if sep == Sep::Uri && self.ui_authority {
            match apps::decode(exposed) {
                Decoded::NotUi => {}
                Decoded::NoTarget => {
                    return Route::Invalid(format!(
                        "Invalid params: `{exposed}` names no target; UI resources here are `ui://<target>+<host>/<path>`, as listed"
                    ));
                }
                Decoded::Target(target, uri) => {
                    return match self.index(target) {
                        Some(idx) => Route::To(idx, Cow::Owned(uri)),
                        None => Route::Unknown,
                    };
                }
            }
        }
        if !self.prefix {
            return Route::Lookup;
        }
        let Some((idx, rest)) = self.split(exposed, sep) else { return Route::Unknown };
        if sep == Sep::Uri && self.ui_authority && apps::is_ui(rest) {
            // One spelling per resource: `ui://` URIs carry the target in the authority only.
            return Route::Invalid(format!(
                "Invalid params: `{exposed}`: UI resources here are `ui://<target>+<host>/<path>`, as listed"
            ));
        }
        Route::To(idx, Cow::Borrowed(rest))
    }

    fn index(&self, target: &str) -> Option<usize> {
        self.targets.iter().position(|t| t == target)
    }

    /// The target index and upstream name for an exposed name, when prefixing. `None` if it
    /// names no target.
    pub fn split<'a>(&self, exposed: &'a str, sep: Sep) -> Option<(usize, &'a str)> {
        let (target, rest) = exposed.split_once(sep.char())?;
        Some((self.index(target)?, rest))
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

    #[test]
    fn ui_uris_carry_the_target_in_the_authority() {
        let n = Naming::new(PrefixMode::Conditional, vec!["a".into(), "b".into()]);
        assert_eq!(n.expose("a", "ui://dash/app.html", Sep::Uri), "ui://a+dash/app.html");
        assert_eq!(n.expose("a", "ui://dash/app.html", Sep::Name), "a_ui://dash/app.html", "only URIs");
        assert_eq!(n.route("ui://b+dash/app.html", Sep::Uri), Route::To(1, Cow::Owned("ui://dash/app.html".into())));
        assert_eq!(n.route("ui://nope+dash/app.html", Sep::Uri), Route::Unknown);
        assert_eq!(n.route("ui://B+dash/app.html", Sep::Uri), Route::Unknown, "target names are exact");
        assert!(matches!(n.route("ui://dash/app.html", Sep::Uri), Route::Invalid(m) if m.contains("names no target")));
        assert!(matches!(n.route("ui://dash/a+b", Sep::Uri), Route::Invalid(_)), "`+` in the path");
        assert!(matches!(n.route("a+ui://dash/app.html", Sep::Uri), Route::Invalid(_)), "the prefix form is refused");
        assert!(matches!(n.route("a+UI://dash/app.html", Sep::Uri), Route::Invalid(_)));
        assert_eq!(n.route("a+file:///x", Sep::Uri), Route::To(0, Cow::Borrowed("file:///x")));
        assert_eq!(n.route("b_ui://x", Sep::Name), Route::To(1, Cow::Borrowed("ui://x")), "tool names are not URIs");

        let never = Naming::new(PrefixMode::Never, vec!["a".into(), "b".into()]);
        assert_eq!(never.expose("b", "ui://dash/app.html", Sep::Uri), "ui://b+dash/app.html", "as agentgateway");
        assert_eq!(never.expose("b", "file:///x", Sep::Uri), "file:///x");
        assert_eq!(
            never.route("ui://b+dash/app.html", Sep::Uri),
            Route::To(1, Cow::Owned("ui://dash/app.html".into()))
        );
        assert_eq!(never.route("file:///x", Sep::Uri), Route::Lookup);

        let alone = Naming::new(PrefixMode::Conditional, vec!["a".into()]);
        assert_eq!(alone.expose("a", "ui://dash/app.html", Sep::Uri), "ui://dash/app.html", "one target: unchanged");
        assert_eq!(alone.route("ui://dash/app.html", Sep::Uri), Route::Lookup);
        let always = Naming::new(PrefixMode::Always, vec!["a".into()]);
        assert_eq!(always.expose("a", "ui://dash/app.html", Sep::Uri), "ui://a+dash/app.html");
    }
}
