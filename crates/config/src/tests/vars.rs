//! `$VAR` expansion as a user meets it: values, defaults, unset variables with their
//! positions, and secrets that come from variables.

use crate::{Loaded, load_str_with};

fn vars(name: &str) -> Option<String> {
    match name {
        "GATEWAY_API_KEY" => Some("k-live-7f3a9c".into()),
        "NUMERIC_KEY" => Some("123456789".into()),
        "OKTA_DOMAIN" => Some("dev-1234.okta.example".into()),
        "PORT" => Some("3030".into()),
        "LONG" => Some("http://a-much-longer-upstream-host.example:3001/mcp".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Loaded, Vec<String>> {
    load_str_with("config.yaml", text, &vars).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

/// A route with an `apiKey` policy whose key is `key` (YAML, as written after `key: `).
fn api_key_config(key: &str) -> String {
    format!(
        "\
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        apiKey:
          keys:
          - key: {key}
      backends:
      - mcp:
          targets:
          - name: mcp
            mcp:
              host: http://localhost:3001/mcp
"
    )
}

fn the_key(loaded: &Loaded) -> String {
    let route = &loaded.config.binds[0].listeners[0].routes[0];
    let auth = route.policies.as_ref().and_then(|p| p.api_key.as_ref()).expect("apiKey policy");
    auth.keys[0].key.as_ref().expect("key").expose().to_string()
}

const JWKS_ROUTE: &str = "\
binds:
- port: $PORT
  listeners:
  - routes:
    - policies:
        jwtAuth:
          issuer: https://$OKTA_DOMAIN
          audiences: [\"${AUDIENCE:-api://default}\"]
          jwks:
            url: https://${OKTA_DOMAIN}/oauth2/v1/keys
      backends:
      - mcp:
          targets:
          - name: mcp
            mcp:
              host: '${UPSTREAM:-http://localhost:3001/mcp}'
";

#[test]
fn set_variables_and_defaults_are_expanded() {
    let loaded = load(JWKS_ROUTE).unwrap();
    let bind = &loaded.config.binds[0];
    // A plain scalar is typed after expansion, as agentgateway (which expands the text) does.
    assert_eq!(bind.port, 3030);
    let route = &bind.listeners[0].routes[0];
    let jwt = serde_json::to_value(route.policies.as_ref().unwrap().jwt_auth.as_ref().unwrap()).unwrap();
    assert_eq!(jwt["issuer"], "https://dev-1234.okta.example");
    assert_eq!(jwt["audiences"], serde_json::json!(["api://default"]));
    assert_eq!(jwt["jwks"]["url"], "https://dev-1234.okta.example/oauth2/v1/keys");
    let target = &route.backends[0].mcp.as_ref().unwrap().targets[0];
    assert_eq!(target.mcp.as_ref().unwrap().host.as_deref(), Some("http://localhost:3001/mcp"));
}

#[test]
fn a_quoted_variable_stays_a_string() {
    let errors = load(&JWKS_ROUTE.replace("port: $PORT", "port: '$PORT'")).unwrap_err();
    assert_eq!(errors, ["config.yaml:2:3: binds[0].port: wrong type: found string \"$PORT\", expected u16"]);
}

#[test]
fn an_unset_variable_is_an_error_at_its_reference() {
    let text = JWKS_ROUTE.replace("issuer: https://$OKTA_DOMAIN", "issuer: https://$OKTA_DOMAN");
    assert_eq!(
        load(&text).unwrap_err(),
        ["config.yaml:7:27: binds[0].listeners[0].routes[0].policies.jwtAuth.issuer: environment variable \
          `OKTA_DOMAN` is not set (referenced as `$OKTA_DOMAN`; write `${OKTA_DOMAN:-default}` for a default, \
          or `$$` for a literal `$`)"]
    );
    // Every unset variable at once, each where it is written, in any scalar style.
    let text = "a: [x, \"${ONE}\", '  $TWO $THREE']\nb:\n  $FOUR: |\n    line\n    and ${FIVE:-five} $SIX\n";
    let errors = load(text).unwrap_err();
    let located: Vec<&str> = errors.iter().map(|e| e.split(" environment").next().unwrap()).collect();
    assert_eq!(
        located,
        [
            "config.yaml:1:9: a[1]:",
            "config.yaml:1:21: a[2]:",
            "config.yaml:1:26: a[2]:",
            "config.yaml:3:3: b:",
            "config.yaml:5:23: b.$FOUR:",
        ]
    );
}

#[test]
fn later_errors_point_into_the_file_as_written() {
    // `$LONG` grows the line by 45 characters; the unknown key after it is still found where
    // it is written.
    let text = "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - mcp: {targets: [{name: m, mcp: {host: $LONG}, bogus: 1}]}\n";
    let errors = load(text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "config.yaml:6:55: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].bogus: unknown field `bogus`"
        ),
        "{errors:#?}"
    );
    // A validation error after an expansion.
    let text = JWKS_ROUTE.replace("- name: mcp", "- name: ${EMPTY}MY_TOOL");
    let errors = load(&text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("config.yaml:14:13: binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].name: target name `${EMPTY}MY_TOOL` contains"), "{errors:#?}");
}

#[test]
fn a_variable_in_a_secret_is_used_and_never_shown() {
    let loaded = load(&api_key_config("$GATEWAY_API_KEY")).unwrap();
    assert_eq!(the_key(&loaded), "k-live-7f3a9c");
    let dump = crate::redact::dump(&loaded.config).to_string();
    assert!(!dump.contains("k-live-7f3a9c"), "{dump}");
    assert!(dump.contains("<redacted>"), "{dump}");
    let debug = format!("{loaded:?}");
    assert!(!debug.contains("k-live-7f3a9c"), "{debug}");

    // An error about the field shows the reference as written, not the value.
    let errors = load(&api_key_config("$NUMERIC_KEY")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].contains("123456789"), "{errors:#?}");
    assert!(
        errors[0].ends_with("keys[0].key: wrong type: found integer `$NUMERIC_KEY`, expected a string"),
        "{errors:#?}"
    );
    // So does an error found after loading (the gateway's resolve step reports through it).
    let loaded = load(&api_key_config("\"Bearer $GATEWAY_API_KEY\"")).unwrap();
    let path = crate::FieldPath::root().key("binds").index(0).key("listeners").index(0).key("routes").index(0);
    let shown =
        loaded.error(crate::FieldError::new(path, "bad key `Bearer k-live-7f3a9c` (k-live-7f3a9c)")).to_string();
    assert!(shown.ends_with("bad key `Bearer $GATEWAY_API_KEY` (<redacted>)"), "{shown}");
}

/// The hole this closes: `key: $GATEWAY_API_KEY` with the variable unset must not make the
/// text `$GATEWAY_API_KEY` an accepted key. In every way a scalar can be written, an unset
/// variable refuses the config; only the explicit `$$` escape yields a literal `$`.
#[test]
fn a_literal_dollar_name_never_becomes_a_credential() {
    for written in [
        "$UNSET_API_KEY",
        "${UNSET_API_KEY}",
        "'$UNSET_API_KEY'",
        "\"$UNSET_API_KEY\"",
        "\"${UNSET_API_KEY}\"",
        "|-\n              $UNSET_API_KEY",
        ">-\n              $UNSET_API_KEY",
        "&k $UNSET_API_KEY",
        "!!str $UNSET_API_KEY",
        "prefix-$UNSET_API_KEY",
    ] {
        let errors = load(&api_key_config(written)).expect_err(written);
        assert!(
            errors.iter().any(|e| e.contains("environment variable `UNSET_API_KEY` is not set")),
            "{written}: {errors:#?}"
        );
    }
    // Set, the value is the key, never the reference.
    for written in
        ["$GATEWAY_API_KEY", "'${GATEWAY_API_KEY}'", "\"$GATEWAY_API_KEY\"", "|-\n              $GATEWAY_API_KEY"]
    {
        assert_eq!(the_key(&load(&api_key_config(written)).unwrap()), "k-live-7f3a9c", "{written}");
    }
    // `$$` is agentgateway's (shellexpand's) escape: a key that really starts with `$`.
    assert_eq!(the_key(&load(&api_key_config("$$UNSET_API_KEY")).unwrap()), "$UNSET_API_KEY");
}

#[test]
fn comments_are_not_expanded() {
    // agentgateway expands comments too (an unset variable there fails); here they are left
    // alone (docs/compatibility.md).
    let text = format!("# export $UNSET_TOKEN first\n{}", api_key_config("$GATEWAY_API_KEY # ${ALSO_UNSET}"));
    assert_eq!(the_key(&load(&text).unwrap()), "k-live-7f3a9c");
}

#[test]
fn a_value_cannot_change_the_document() {
    // Pasted into the text (agentgateway), `x # y` would lose ` # y` to a comment, and
    // `*ref` would be an alias. Here the value is the value.
    let odd = |name: &str| match name {
        "ODD" => Some("*ref # not a comment".to_string()),
        _ => None,
    };
    let loaded = load_str_with("config.yaml", &api_key_config("$ODD"), &odd).unwrap();
    assert_eq!(the_key(&loaded), "*ref # not a comment");
}

#[test]
fn many_unset_variables_are_summed_up() {
    let text: String = (0..100_000).map(|i| format!("k{i}: $UNSET_{i}\n")).collect();
    let errors = load(&text).unwrap_err();
    assert_eq!(errors.len(), 20);
    assert!(errors[0].starts_with("config.yaml:1:5: k0: environment variable `UNSET_0` is not set"), "{}", errors[0]);
    assert!(errors[19].ends_with("(99980 more unset variables not shown)"), "{}", errors[19]);
}

#[test]
fn expansion_cannot_grow_the_document_without_bound() {
    let big = "x".repeat(1 << 20);
    let vars = |name: &str| (name == "BIG").then(|| big.clone());
    let text: String = (0..100).map(|i| format!("k{i}: $BIG\n")).collect();
    let errors = load_str_with("config.yaml", &text, &vars).unwrap_err();
    assert!(errors.to_string().contains("variables expand to more than 64 MiB"), "{errors}");
    let fits: String = (0..10).map(|i| format!("k{i}: $BIG\n")).collect();
    let errors = load_str_with("config.yaml", &fits, &vars).unwrap_err();
    assert!(errors.to_string().contains("unknown field `k0`"), "{errors}");
}
