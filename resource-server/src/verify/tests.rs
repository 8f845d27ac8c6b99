//! JWT checks against tokens signed here, with the key put straight into
//! the cache so no JWKS is fetched. The fixture serves the status list and
//! Shared Signals tests too.

use serde_json::json;
use writ_infra::signing::jwt;
use writ_infra::signing::keypair::{self, Signer};

use super::*;

pub(crate) const ISSUER: &str = "https://writ.example";
pub(crate) const AUDIENCE: &str = "https://api.example/";

pub(crate) struct Fixture {
    pub(crate) server: ResourceServer,
    pub(crate) signer: Signer,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

/// A resource server trusting a fresh ES256 key, with `setup` applied to
/// its configuration.
pub(crate) fn fixture_with(setup: impl FnOnce(&mut Config)) -> Fixture {
    let generated = keypair::generate("ES256").unwrap_or_else(|e| panic!("{e}"));
    let signer = Signer::from_pkcs8(&generated.kid, generated.alg, &generated.pkcs8)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = Config::new(ISSUER, AUDIENCE);
    // Nothing listens here: a fetch would fail, so only the cached key counts.
    config.jwks_url = "http://127.0.0.1:9/jwks".into();
    config.skew = Duration::from_secs(5);
    setup(&mut config);
    let server = ResourceServer::new(config);
    server
        .inner
        .keys
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            generated.kid.clone(),
            (generated.alg.to_owned(), generated.public_jwk.clone()),
        );
    Fixture { server, signer }
}

pub(crate) fn now() -> i64 {
    Utc::now().timestamp()
}

/// Claims Writ would put in an access token, `iat` now.
pub(crate) fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "client_id": "app",
        "jti": "j1",
        "scope": "read",
        "iat": now(),
        "exp": now() + 300,
    })
}

impl Fixture {
    pub(crate) fn sign(&self, typ: &str, claims: &Value) -> String {
        jwt::encode(&self.signer, typ, claims).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn check(&self, typ: &str, claims: &Value) -> Result<Principal, Rejection> {
        self.server.authenticate(&self.sign(typ, claims)).await
    }
}

#[tokio::test]
async fn both_spellings_of_the_access_token_type_are_accepted_in_any_case() {
    let f = fixture();
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+JWT",
    ] {
        let principal = f.check(typ, &claims()).await;
        assert!(principal.is_ok(), "{typ}: {principal:?}");
        assert_eq!(principal.ok().and_then(|p| p.sub).as_deref(), Some("alice"));
    }
}

#[tokio::test]
async fn other_token_types_are_refused() {
    let f = fixture();
    for typ in [
        "JWT",
        "application/jwt",
        "at+jwt; x=1",
        "application/at+jwt ",
        "xapplication/at+jwt",
        "",
    ] {
        assert_eq!(
            f.check(typ, &claims()).await.err(),
            Some(Rejection::invalid_token("not an access token (typ)")),
            "{typ:?}"
        );
    }
}

#[tokio::test]
async fn a_token_not_yet_valid_beyond_the_skew_is_refused() {
    let f = fixture();
    let mut early = claims();
    early["nbf"] = json!(now() + 60);
    assert_eq!(
        f.check("at+jwt", &early).await.err(),
        Some(Rejection::invalid_token("the token is not yet valid (nbf)"))
    );
    let mut within = claims();
    within["nbf"] = json!(now() + 2);
    assert!(
        f.check("at+jwt", &within).await.is_ok(),
        "nbf within the skew"
    );
    let mut past = claims();
    past["nbf"] = json!(now() - 10);
    assert!(f.check("at+jwt", &past).await.is_ok(), "nbf passed");
}

#[tokio::test]
async fn a_token_issued_in_the_future_beyond_the_skew_is_refused() {
    let f = fixture();
    let mut future = claims();
    future["iat"] = json!(now() + 60);
    assert_eq!(
        f.check("at+jwt", &future).await.err(),
        Some(Rejection::invalid_token(
            "the token was issued in the future (iat)"
        ))
    );
    let mut within = claims();
    within["iat"] = json!(now() + 2);
    assert!(
        f.check("at+jwt", &within).await.is_ok(),
        "iat within the skew"
    );
}

#[tokio::test]
async fn a_token_without_iat_or_with_a_non_numeric_time_is_refused() {
    let f = fixture();
    let mut missing = claims();
    if let Some(claims) = missing.as_object_mut() {
        claims.remove("iat");
    }
    assert_eq!(
        f.check("at+jwt", &missing).await.err(),
        Some(Rejection::invalid_token("the token has no iat"))
    );
    let mut text = claims();
    text["nbf"] = json!("soon");
    assert_eq!(
        f.check("at+jwt", &text).await.err(),
        Some(Rejection::invalid_token("the token's claims are malformed"))
    );
}

#[test]
fn time_checks_at_the_edge_of_the_skew() {
    let at = |iat: i64, nbf: Option<i64>| {
        let mut claims = typed(&claims()).unwrap_or_else(|e| panic!("{e:?}"));
        claims.iat = Some(iat);
        claims.nbf = nbf;
        check_times(&claims, 1_000, 5).is_ok()
    };
    assert!(at(1_005, None), "iat exactly at now + skew");
    assert!(!at(1_006, None), "iat one second beyond");
    assert!(at(900, Some(1_005)), "nbf exactly at now + skew");
    assert!(!at(900, Some(1_006)), "nbf one second beyond");
}
