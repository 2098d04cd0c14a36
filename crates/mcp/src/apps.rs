//! MCP Apps (the `io.modelcontextprotocol/ui` extension): a tool names an HTML resource with a
//! `ui://` URI in `_meta.ui.resourceUri` (or the older flat key `_meta["ui/resourceUri"]`),
//! and the host reads that resource to show the app.
//!
//! When several targets share one endpoint, other resource URIs are exposed as
//! `<target>+<uri>`, which would turn a `ui://` URI into something hosts no longer recognise
//! as an app. A `ui://` URI carries the target in its authority instead:
//! `ui://dashboard/app.html` of target `a` is exposed as `ui://a+dashboard/app.html`. Target
//! names contain no `+`, so the first `+` of the authority ends the target.

use serde_json::Value;

const SCHEME: &str = "ui://";
/// `_meta.ui.resourceUri`.
const META_UI: &str = "ui";
const META_UI_URI: &str = "resourceUri";
/// `_meta["ui/resourceUri"]`: deprecated, still sent by SDKs next to the nested key.
const META_FLAT_URI: &str = "ui/resourceUri";
/// The keys of a `_meta` that [`edit_meta_uris`] may change.
pub(crate) const META_KEYS: [&str; 2] = [META_UI, META_FLAT_URI];

/// What follows `ui://` in `uri`, when its scheme is `ui` (in any case: RFC 3986 §3.1).
fn after_scheme(uri: &str) -> Option<&str> {
    let head = uri.get(..SCHEME.len())?;
    head.eq_ignore_ascii_case(SCHEME).then(|| &uri[SCHEME.len()..])
}

pub(crate) fn is_ui(uri: &str) -> bool {
    after_scheme(uri).is_some()
}

/// The URI a client sees for `uri` of `target`: `ui://<target>+<rest>`; `None` for other
/// schemes.
pub(crate) fn encode(target: &str, uri: &str) -> Option<String> {
    after_scheme(uri).map(|rest| format!("{SCHEME}{target}+{rest}"))
}

/// A `ui://` URI a client sent, taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// Not a `ui://` URI.
    NotUi,
    /// A `ui://` URI without `<target>+` at the start of its authority.
    NoTarget,
    /// The target's name and the URI the target knows.
    Target(&'a str, String),
}

/// Reverses [`encode`]. The `+` must lie in the authority (before any `/`, `?` or `#`), so a
/// `+` in the path never names a target.
pub(crate) fn decode(uri: &str) -> Decoded<'_> {
    let Some(rest) = after_scheme(uri) else { return Decoded::NotUi };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.split_once('+') {
        Some((target, _)) if !target.is_empty() => {
            Decoded::Target(target, format!("{SCHEME}{}", &rest[target.len() + 1..]))
        }
        _ => Decoded::NoTarget,
    }
}

/// What to do with one URI in a `_meta`.
pub(crate) enum Edit {
    Keep,
    Replace(String),
    Remove,
}

/// Applies `edit` to each resource URI in the `_meta` of `holder` (a tool, or a tool call's
/// result): `_meta.ui.resourceUri` and `_meta["ui/resourceUri"]`. A removed URI leaves the
/// rest of `_meta.ui` (e.g. `visibility`) in place; a `_meta.ui` or `_meta` left empty goes.
/// Values that are not strings name no resource and are left alone. Returns whether anything
/// changed. Costs one lookup when `holder` has no `_meta`.
pub(crate) fn edit_meta_uris(holder: &mut Value, mut edit: impl FnMut(&str) -> Edit) -> bool {
    let Some(meta) = holder.get_mut("_meta").and_then(Value::as_object_mut) else { return false };
    let mut changed = false;
    if let Some(ui) = meta.get_mut(META_UI).and_then(Value::as_object_mut)
        && apply(ui, META_UI_URI, &mut edit)
    {
        changed = true;
        if ui.is_empty() {
            meta.remove(META_UI);
        }
    }
    changed |= apply(meta, META_FLAT_URI, &mut edit);
    if changed && meta.is_empty() {
        holder.as_object_mut().map(|h| h.remove("_meta"));
    }
    changed
}

fn apply(map: &mut serde_json::Map<String, Value>, key: &str, edit: &mut impl FnMut(&str) -> Edit) -> bool {
    let Some(uri) = map.get(key).and_then(Value::as_str) else { return false };
    match edit(uri) {
        Edit::Keep => false,
        Edit::Replace(new) => {
            map.insert(key.to_string(), Value::String(new));
            true
        }
        Edit::Remove => {
            map.remove(key);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_target_goes_into_the_authority_and_comes_back_out() {
        assert_eq!(encode("a", "ui://dashboard/app.html").as_deref(), Some("ui://a+dashboard/app.html"));
        assert_eq!(encode("a", "UI://dashboard/app.html").as_deref(), Some("ui://a+dashboard/app.html"));
        assert_eq!(encode("a", "ui://x+y/p?q=1#f").as_deref(), Some("ui://a+x+y/p?q=1#f"));
        assert_eq!(encode("a", "file:///ui://x"), None);
        assert_eq!(encode("a", "ui:/x"), None, "not `ui://`");
        for uri in ["ui://dashboard/app.html", "ui://x+y/p?q=1#f", "ui://only", "ui://", "ui://h/{view}.html"] {
            assert_eq!(decode(&encode("t-1", uri).unwrap()), Decoded::Target("t-1", uri.to_string()), "{uri}");
        }
    }

    #[test]
    fn uris_without_a_target_in_the_authority_are_told_apart() {
        assert_eq!(decode("ui://dashboard/app.html"), Decoded::NoTarget);
        assert_eq!(decode("ui://+dashboard/app.html"), Decoded::NoTarget, "empty target");
        assert_eq!(decode("ui://dashboard/a+b.html"), Decoded::NoTarget, "`+` in the path");
        assert_eq!(decode("ui://dashboard?a+b"), Decoded::NoTarget, "`+` in the query");
        assert_eq!(decode("ui://dashboard#a+b"), Decoded::NoTarget, "`+` in the fragment");
        assert_eq!(decode("ui://"), Decoded::NoTarget);
        assert_eq!(decode("a+ui://dashboard/app.html"), Decoded::NotUi);
        assert_eq!(decode("u"), Decoded::NotUi);
        assert_eq!(decode("ü"), Decoded::NotUi, "multi-byte text shorter than the scheme");
        assert_eq!(decode("uiiiü://x"), Decoded::NotUi, "no char boundary at the scheme's length");
        assert_eq!(decode("UI://A+x/y"), Decoded::Target("A", "ui://x/y".into()), "case is the caller's problem");
    }

    #[test]
    fn meta_uris_are_edited_in_both_places_and_empty_holders_go() {
        let mut tool = json!({"name": "t", "_meta": {"ui": {"resourceUri": "ui://d/a", "visibility": ["app"]}, "ui/resourceUri": "ui://d/a", "other": 1}});
        assert!(edit_meta_uris(&mut tool, |u| Edit::Replace(encode("x", u).unwrap())));
        assert_eq!(
            tool["_meta"],
            json!({"ui": {"resourceUri": "ui://x+d/a", "visibility": ["app"]}, "ui/resourceUri": "ui://x+d/a", "other": 1})
        );
        assert!(edit_meta_uris(&mut tool, |_| Edit::Remove));
        assert_eq!(tool["_meta"], json!({"ui": {"visibility": ["app"]}, "other": 1}), "visibility stays");

        let mut bare = json!({"name": "t", "_meta": {"ui": {"resourceUri": "ui://d/a"}, "ui/resourceUri": "ui://d/a"}});
        assert!(edit_meta_uris(&mut bare, |_| Edit::Remove));
        assert_eq!(bare, json!({"name": "t"}));

        let mut odd = json!({"_meta": {"ui": {"resourceUri": 5}, "ui/resourceUri": null}});
        assert!(!edit_meta_uris(&mut odd, |_| Edit::Remove), "not strings: left alone");
        assert!(!edit_meta_uris(&mut json!({"_meta": "x"}), |_| Edit::Remove));
        let mut empty = json!({"_meta": {"ui": {}}});
        assert!(!edit_meta_uris(&mut empty, |_| Edit::Remove));
        assert_eq!(empty, json!({"_meta": {"ui": {}}}), "what the upstream sent stays when nothing is edited");
        assert!(!edit_meta_uris(&mut json!([1]), |_| Edit::Remove));
        let mut keep = json!({"_meta": {"ui/resourceUri": "ui://d/a"}});
        assert!(!edit_meta_uris(&mut keep, |_| Edit::Keep));
        assert_eq!(keep, json!({"_meta": {"ui/resourceUri": "ui://d/a"}}));
    }
}
