use super::*;

fn parts(uri: &str, cookies: &str) -> Parts {
    let mut b = Request::builder().uri(uri);
    if !cookies.is_empty() {
        b = b.header(header::COOKIE, cookies);
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn cookies_are_found_and_the_gateways_stripped() {
    let mut p = parts("/", "a=1; agw_oidc_s_x=sealed; b=2");
    assert_eq!(cookie(&p, "agw_oidc_s_x"), Some("sealed"));
    assert_eq!(cookie(&p, "b"), Some("2"));
    assert_eq!(cookie(&p, "c"), None);
    strip_cookies(&mut p, |n| n.starts_with("agw_oidc_"));
    assert_eq!(p.headers[header::COOKIE], "a=1; b=2");
    let mut only = parts("/", "agw_oidc_s_x=v");
    strip_cookies(&mut only, |n| n.starts_with("agw_oidc_"));
    assert!(only.headers.get(header::COOKIE).is_none());
}

#[test]
fn callbacks_need_state_and_code_or_error() {
    assert!(Callback::parse(&parts("/cb?state=s&code=c", "")).is_some());
    assert!(Callback::parse(&parts("/cb?state=s&error=access_denied", "")).is_some());
    assert!(Callback::parse(&parts("/cb?state=s", "")).is_none());
    assert!(Callback::parse(&parts("/cb?code=c", "")).is_none());
    assert!(Callback::parse(&parts("/cb", "")).is_none());
    let long = format!("/cb?code=c&state={}", "x".repeat(600));
    assert!(Callback::parse(&parts(&long, "")).is_none());
}

#[test]
fn comparison_is_exact() {
    assert!(constant_eq(b"abc", b"abc"));
    assert!(!constant_eq(b"abc", b"abd"));
    assert!(!constant_eq(b"abc", b"ab"));
}

#[test]
fn the_return_target_stays_on_this_host() {
    assert_eq!(local_target("/docs/page?x=1"), "/docs/page?x=1");
    assert_eq!(local_target("//evil.example/x"), "/");
    assert_eq!(local_target("/\\evil.example/x"), "/");
    assert_eq!(local_target("https://evil.example/"), "/");
    assert_eq!(local_target(&format!("/{}", "a".repeat(3000))), "/");
}
