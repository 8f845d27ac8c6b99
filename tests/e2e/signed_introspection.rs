//! JWT introspection answers (RFC 9701) against the real binary, verified
//! with the `jsonwebtoken` crate against Writ's JWKS: the caller that asks
//! for `application/token-introspection+jwt` gets the RFC 7662 answer as a
//! signed claim addressed to it; others get plain JSON as before.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use crate::harness::{Backend, Deployment};
use crate::oauth::{self, form, Api};

writ_testing::on_both_backends!(a_caller_that_asks_gets_a_signed_introspection_answer,);

const SIGNED: &str = "application/token-introspection+jwt";

async fn introspect_signed(api: &Api, caller: &oauth::Creds, token: &str) -> (String, String) {
    let response = api
        .http
        .post(api.url("/introspect"))
        .basic_auth(&caller.id, Some(&caller.secret))
        .header("accept", SIGNED)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token)]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, response.text().await.unwrap_or_default())
}

fn verified(jwt: &str, keys: &JwkSet, audience: &str, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        header.typ.as_deref(),
        Some("token-introspection+jwt"),
        "RFC 9701 §5"
    );
    let kid = header.kid.unwrap_or_else(|| panic!("no kid"));
    let jwk = keys
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk).unwrap_or_else(|e| panic!("{e}"));
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("the answer does not verify: {e}"))
        .claims
}

async fn a_caller_that_asks_gets_a_signed_introspection_answer(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let issuer = server.url("");
    let issuer = issuer.trim_end_matches('/');
    let token = api.client_credentials(&service).await;
    let keys: JwkSet = api
        .http
        .get(api.url("/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let (content_type, jwt) = introspect_signed(&api, &service, &token).await;
    assert_eq!(content_type, SIGNED);
    let claims = verified(&jwt, &keys, &service.id, issuer);
    let answer = &claims["token_introspection"];
    assert_eq!(answer["active"], true, "{claims}");
    assert_eq!(answer["client_id"], service.id.as_str());
    assert!(claims["iat"].is_i64());
    assert_eq!(
        *answer,
        api.introspect(&service, &token).await,
        "the signed answer is the plain one"
    );

    let (_, jwt) = introspect_signed(&api, &service, "not-a-token-at-all-0123456789").await;
    let claims = verified(&jwt, &keys, &service.id, issuer);
    assert_eq!(
        claims["token_introspection"],
        serde_json::json!({"active": false})
    );
    let discovery: Value = serde_json::from_str(
        &api.text("/.well-known/oauth-authorization-server")
            .await
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(
        discovery["introspection_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}
