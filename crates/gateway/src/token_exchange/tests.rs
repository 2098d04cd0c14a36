use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cache::TokenCache;
use super::*;
use serde_json::json;

const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

fn jwt(claims: &Value) -> String {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.sig", b.encode(br#"{"alg":"none"}"#), b.encode(claims.to_string()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn leg(grant: GrantType, client_auth: Option<ClientAuth>, requested_type: Option<&str>) -> Leg {
    Leg {
        url: "http://127.0.0.1:1/token".parse().unwrap(),
        client: HttpClient::default(),
        grant,
        audiences: vec!["api-a".into(), "api b".into()],
        scope: Some("read write".into()),
        resources: vec!["https://api.example/".into()],
        requested_type: requested_type.map(str::to_string),
        client_auth,
    }
}

fn exchange<'a>(subject: &'a str) -> Exchange<'a> {
    Exchange {
        subject,
        subject_type: ACCESS_TOKEN,
        actor: None,
        params: vec![("requested_token_use", "on_behalf_of".into())],
    }
}

fn form_pairs(form: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(form.as_bytes()).into_owned().collect()
}

#[test]
fn token_exchange_form_has_every_parameter_once_encoded() {
    let l = leg(
        GrantType::TokenExchange,
        Some(ClientAuth::Post { id: "gw".into(), secret: Some(model::Secret::new("s&=1")) }),
        Some(JWT_TYPE),
    );
    let (form, basic) = l.form(&exchange("tok+en/=")).unwrap();
    assert!(basic.is_none());
    let pairs = form_pairs(&form);
    let get = |k: &str| pairs.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(get("grant_type"), [GRANT_TOKEN_EXCHANGE]);
    assert_eq!(get("subject_token"), ["tok+en/="]);
    assert_eq!(get("subject_token_type"), [ACCESS_TOKEN]);
    assert_eq!(get("requested_token_type"), [JWT_TYPE]);
    assert_eq!(get("audience"), ["api-a", "api b"]);
    assert_eq!(get("resource"), ["https://api.example/"]);
    assert_eq!(get("scope"), ["read write"]);
    assert_eq!(get("client_id"), ["gw"]);
    assert_eq!(get("client_secret"), ["s&=1"]);
    assert_eq!(get("requested_token_use"), ["on_behalf_of"]);
    assert!(get("assertion").is_empty());
}

#[test]
fn jwt_bearer_form_sends_the_assertion_and_basic_auth_is_form_encoded() {
    let l = leg(
        GrantType::JwtBearer,
        Some(ClientAuth::Basic { id: "gw:1".into(), secret: model::Secret::new("p ss") }),
        None,
    );
    let (form, basic) = l.form(&exchange("the-jwt")).unwrap();
    let pairs = form_pairs(&form);
    assert!(pairs.contains(&("grant_type".into(), GRANT_JWT_BEARER.into())));
    assert!(pairs.contains(&("assertion".into(), "the-jwt".into())));
    assert!(!pairs.iter().any(|(k, _)| k == "subject_token" || k == "client_secret"));
    let basic = basic.unwrap();
    assert!(basic.is_sensitive());
    let encoded = basic.to_str().unwrap().strip_prefix("Basic ").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    assert_eq!(decoded, b"gw%3A1:p+ss");
}

#[test]
fn answers_are_checked_for_their_token_type() {
    let l = leg(GrantType::TokenExchange, None, None);
    let ok = l.answer(br#"{"access_token":"abc","token_type":"bearer","expires_in":60}"#).unwrap();
    assert_eq!((ok.0.expose(), ok.1), ("abc", Some(60)));
    for bad in [
        &br#"{"access_token":"abc","token_type":"mac"}"#[..],
        br#"{"access_token":"abc"}"#,
        br#"{"access_token":"","token_type":"Bearer"}"#,
        br#"{"access_token":"a b","token_type":"Bearer"}"#,
        br#"["not", "an object"]"#,
        b"not json",
    ] {
        assert!(matches!(l.answer(bad), Err(ExchangeError::Upstream(_))), "{}", String::from_utf8_lossy(bad));
    }
    let want_jwt = leg(GrantType::TokenExchange, None, Some(JWT_TYPE));
    let wrong = br#"{"access_token":"abc","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
    assert!(want_jwt.answer(wrong).is_err());
    let jag = leg(GrantType::TokenExchange, None, Some(ID_JAG));
    assert!(
        jag.answer(
            br#"{"access_token":"j","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag"}"#
        )
        .is_ok()
    );
    assert!(jag.answer(br#"{"access_token":"j","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag"}"#).is_err());
    assert!(jag.answer(br#"{"access_token":"j","token_type":"N_A"}"#).is_err());
}

#[test]
fn may_act_must_name_the_actor() {
    let subject =
        unverified_claims(&jwt(&json!({"sub": "alice", "may_act": {"sub": ["agent-1", "agent-2"], "iss": "idp"}})));
    assert!(may_act(subject.as_ref(), &jwt(&json!({"sub": "agent-2", "iss": "idp"}))));
    assert!(!may_act(subject.as_ref(), &jwt(&json!({"sub": "agent-3", "iss": "idp"}))));
    assert!(!may_act(subject.as_ref(), &jwt(&json!({"sub": "agent-1"}))));
    assert!(!may_act(subject.as_ref(), "opaque-token"));
    let empty = unverified_claims(&jwt(&json!({"sub": "alice", "may_act": {}})));
    assert!(!may_act(empty.as_ref(), &jwt(&json!({"sub": "agent-1"}))));
    assert!(!may_act(None, &jwt(&json!({"sub": "agent-1"}))));
}

#[test]
fn unverified_claims_need_three_parts_of_json() {
    assert_eq!(unverified_claims(&jwt(&json!({"exp": 5}))).unwrap()["exp"], 5);
    assert!(unverified_claims("a.b").is_none());
    assert!(unverified_claims("a.b.c.d").is_none());
    assert!(unverified_claims("a.!!!.c").is_none());
}

#[test]
fn cache_expiry_is_capped_by_the_subject_and_skips_nearly_expired_tokens() {
    let c = TokenCache::new(4, Duration::from_secs(300));
    let t = now();
    let at = |e: Option<SystemTime>| e.map(|s| s.duration_since(UNIX_EPOCH).unwrap().as_secs());
    let full = at(c.expiry(Some(600), None)).unwrap();
    assert!((t + 599..=t + 601).contains(&full));
    let default = at(c.expiry(None, None)).unwrap();
    assert!((t + 299..=t + 301).contains(&default));
    let capped = at(c.expiry(Some(600), Some(t + 100))).unwrap();
    assert_eq!(capped, t + 100);
    assert_eq!(c.expiry(Some(600), Some(t + 10)), None, "within the safety margin");
    assert_eq!(c.expiry(Some(5), None), None);
}

#[tokio::test]
async fn cache_fetches_once_per_key_and_stays_bounded() {
    let c = TokenCache::new(2, Duration::from_secs(300));
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let fetch = |v: &'static str| {
        let calls = &calls;
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok((model::Secret::new(v), Some(600)))
        }
    };
    let expiry = |e| c.expiry(e, None);
    let k1 = cache::key(&exchange("one"));
    assert_eq!(c.get_or_fetch(k1, fetch("t1"), expiry).await.unwrap().expose(), "t1");
    assert_eq!(c.get_or_fetch(k1, fetch("other"), expiry).await.unwrap().expose(), "t1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A failure is not cached.
    let k2 = cache::key(&exchange("two"));
    let failing = || async { Err(ExchangeError::Upstream("down".into())) };
    assert!(c.get_or_fetch(k2, failing, expiry).await.is_err());
    assert_eq!(c.get_or_fetch(k2, fetch("t2"), expiry).await.unwrap().expose(), "t2");
    for i in 0..10 {
        let subject = format!("s{i}");
        let k = cache::key(&exchange(&subject));
        c.get_or_fetch(k, fetch("t"), expiry).await.unwrap();
        assert!(c.entries() <= 2);
    }
    // Different inputs, different keys; the same, the same.
    assert_ne!(cache::key(&exchange("a")), cache::key(&exchange("b")));
    let mut with_actor = exchange("a");
    with_actor.actor = Some(("actor".into(), ACCESS_TOKEN));
    assert_ne!(cache::key(&exchange("a")), cache::key(&with_actor));
    assert_eq!(cache::key(&exchange("a")), cache::key(&exchange("a")));
}

#[test]
fn errors_map_to_whose_problem_it_is() {
    assert_eq!(ExchangeError::Expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ExchangeError::NoSubject.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ExchangeError::Refused(StatusCode::BAD_REQUEST).status(), StatusCode::FORBIDDEN);
    assert_eq!(ExchangeError::Upstream("x".into()).status(), StatusCode::BAD_GATEWAY);
}
