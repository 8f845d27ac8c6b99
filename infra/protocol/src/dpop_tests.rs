use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use super::*;

const NOW: i64 = 1_765_000_000;
const URL: &str = "https://writ.example/token";

fn es256() -> (EcdsaKeyPair, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (pair, jwk)
}

fn sign(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn header(jwk: &Value) -> Value {
    json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk})
}

fn claims() -> Value {
    json!({"jti": "p1", "htm": "POST", "htu": URL, "iat": NOW})
}

fn expected() -> Expected<'static> {
    Expected {
        method: "POST",
        url: URL,
        access_token: None,
        now: NOW,
        max_age_secs: 60,
        max_skew_secs: 5,
    }
}

fn refusal(proof: &str, expected: &Expected<'_>) -> &'static str {
    match verify(proof, expected) {
        Ok(_) => panic!("a bad proof verified"),
        Err(InvalidProof(why)) => why,
    }
}

#[test]
fn the_thumbprint_is_rfc_9449s_example() {
    // RFC 9449 §4.1's key and the `jkt` §6.1 binds its tokens to.
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    });
    assert_eq!(
        thumbprint(&jwk).as_deref(),
        Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    );
    assert_eq!(thumbprint(&json!({"kty": "oct", "k": "c2VjcmV0"})), None);
}

#[test]
fn a_proof_for_this_request_verifies_and_names_its_key() {
    let (pair, jwk) = es256();
    let proof = sign(&pair, &header(&jwk), &claims());
    let verified = verify(&proof, &expected()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Some(verified.jkt), thumbprint(&jwk));
    assert_eq!(verified.jti, "p1");
    assert_eq!(verified.nonce, None);
    let with_query = json!({"jti": "p1", "htm": "POST", "htu": "HTTPS://Writ.Example:443/token?x=1#f", "iat": NOW});
    assert!(
        verify(&sign(&pair, &header(&jwk), &with_query), &expected()).is_ok(),
        "normalised, query and fragment ignored"
    );
}

#[test]
fn every_header_rule_of_section_4_3_refuses() {
    let (pair, jwk) = es256();
    let mut typ = header(&jwk);
    typ["typ"] = json!("jwt");
    assert!(refusal(&sign(&pair, &typ, &claims()), &expected()).contains("typ"));
    let mut private = jwk.clone();
    private["d"] = json!("AAAA");
    assert!(refusal(&sign(&pair, &header(&private), &claims()), &expected()).contains("private"));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    assert!(refusal(&none, &expected()).contains("alg"));
    let mut hs256 = header(&jwk);
    hs256["alg"] = json!("HS256");
    assert!(refusal(&sign(&pair, &hs256, &claims()), &expected()).contains("alg"));
    let (other, _) = es256();
    assert!(refusal(&sign(&other, &header(&jwk), &claims()), &expected()).contains("signature"));
    let no_jwk = json!({"typ": "dpop+jwt", "alg": "ES256"});
    assert!(refusal(&sign(&pair, &no_jwk, &claims()), &expected()).contains("jwk"));
}

#[test]
fn method_url_time_and_token_hash_must_match_the_request() {
    let (pair, jwk) = es256();
    let with = |name: &str, value: Value| {
        let mut claims = claims();
        claims[name] = value;
        sign(&pair, &header(&jwk), &claims)
    };
    assert!(refusal(&with("htm", json!("GET")), &expected()).contains("htm"));
    let elsewhere = with("htu", json!("https://writ.example/par"));
    assert!(refusal(&elsewhere, &expected()).contains("htu"));
    assert!(refusal(&with("iat", json!(NOW - 61)), &expected()).contains("iat"));
    assert!(refusal(&with("iat", json!(NOW + 6)), &expected()).contains("iat"));
    assert!(refusal(&with("jti", json!("")), &expected()).contains("jti"));
    let for_token = Expected {
        access_token: Some("the-token"),
        ..expected()
    };
    assert!(refusal(&sign(&pair, &header(&jwk), &claims()), &for_token).contains("ath"));
    let wrong_ath = with("ath", json!(access_token_hash("another")));
    assert!(refusal(&wrong_ath, &for_token).contains("ath"));
    let right_ath = with("ath", json!(access_token_hash("the-token")));
    assert!(verify(&right_ath, &for_token).is_ok());
}
