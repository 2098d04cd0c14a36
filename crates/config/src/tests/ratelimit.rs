//! `localRateLimit`: the list and conditional forms, and what is refused.

use super::{MINIMAL, error, load_str};
use crate::model::LocalRateLimits;

fn with_limit(yaml: &str) -> String {
    MINIMAL.replace("    - backends:", &format!("    - policies:\n        localRateLimit:\n{yaml}      backends:"))
}

#[test]
fn both_forms_load() {
    let list = with_limit(
        "        - {maxTokens: 10, tokensPerFill: 1, fillInterval: 60s}\n        - {maxTokens: 5, tokensPerFill: 5, fillInterval: 1s, type: requests, key: jwt.sub}\n",
    );
    let loaded = load_str("config.yaml", &list).unwrap();
    let p = loaded.config.binds[0].listeners[0].routes[0].policies.clone().unwrap();
    let limits = p.local_rate_limit.unwrap();
    let entries = limits.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].1.key.as_deref(), Some("jwt.sub"));
    let cond = with_limit(
        "          conditional:\n          - {condition: 'jwt.sub == \"a\"', maxTokens: 1, tokensPerFill: 1, fillInterval: 1s}\n          - {maxTokens: 2, tokensPerFill: 1, fillInterval: 1s}\n",
    );
    let loaded = load_str("config.yaml", &cond).unwrap();
    let l = loaded.config.binds[0].listeners[0].routes[0].policies.clone().unwrap().local_rate_limit.unwrap();
    assert!(matches!(l, LocalRateLimits::Conditional(_)));
    assert_eq!(l.entries()[0].0, Some("jwt.sub == \"a\""));
}

#[test]
fn bad_limits_are_located_errors() {
    let cases = [
        (
            "        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s, type: tokens}\n",
            "localRateLimit[0].type: not supported yet",
        ),
        (
            "        - {maxTokens: 0, tokensPerFill: 1, fillInterval: 1s}\n",
            "localRateLimit[0].maxTokens: must be more than 0",
        ),
        (
            "        - {maxTokens: 1, tokensPerFill: 0, fillInterval: 1s}\n",
            "localRateLimit[0].tokensPerFill: must be more than 0",
        ),
        (
            "        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 0s}\n",
            "localRateLimit[0].fillInterval: must be more than 0",
        ),
        (
            "        - {maxTokens: 1, tokensPerFill: 2, fillInterval: 1s}\n",
            "localRateLimit[0].tokensPerFill: cannot be more than `maxTokens`",
        ),
        ("        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s, burst: 2}\n", "unknown field `burst`"),
        (
            "          conditional:\n          - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s}\n          - {condition: 'true', maxTokens: 1, tokensPerFill: 1, fillInterval: 1s}\n",
            "localRateLimit.conditional[0]: an entry without a condition is the fallback and must be last",
        ),
        ("          conditional: []\n", "localRateLimit.conditional: needs at least one entry"),
        ("          maxTokens: 1\n", "unknown field `maxTokens`, expected `conditional`"),
    ];
    for (yaml, want) in cases {
        let got = error(&with_limit(yaml));
        assert!(got.contains(want), "want `{want}`, got `{got}`");
    }
}
