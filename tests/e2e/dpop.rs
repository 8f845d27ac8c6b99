//! DPoP (RFC 9449) against the real binary, with proofs made here with
//! `ring` (thumbprints and `ath` computed here too, independently of
//! Writ's code): a proof at the token endpoint binds the access token,
//! which introspection and userinfo then show and demand; every proof
//! that breaks a rule of §4.3 is refused with nothing written; a replay
//! is refused across two processes; clients registered as DPoP-bound must
//! send proofs, and a server that requires nonces hands them out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{Backend, Deployment};
use crate::oauth::{self, form, Api, Creds, Reply};
use crate::private_key_jwt::Signer;

writ_testing::on_both_backends!(
    a_proof_binds_the_token_and_introspection_and_userinfo_demand_the_key,
    every_rule_of_section_4_3_refuses_and_writes_nothing,
    a_proof_is_used_once_across_two_processes,
    dpop_bound_clients_must_prove_and_nonces_are_handed_out_when_required,
);

/// A DPoP key: `ring` signs, its public JWK goes in every proof's header.
pub struct Key(Signer);

impl Key {
    pub fn new() -> Self {
        Self(Signer::new("dpop"))
    }

    fn public_jwk(&self) -> Value {
        let full = self.0.jwk();
        json!({"kty": "EC", "crv": "P-256", "x": full["x"], "y": full["y"]})
    }

    /// RFC 7638, by hand: the required members in order, no whitespace.
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    pub fn proof_with(&self, header: Value, claims: Value) -> String {
        self.0.sign(&header, &claims)
    }

    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk()})
    }

    /// A fresh proof for `method` at `url`, for `token` when one is presented.
    pub fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.proof_with(self.header(), claims(method, url, token))
    }
}

pub fn claims(method: &str, url: &str, token: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": format!("proof-{}", rand::random::<u64>()),
        "htm": method, "htu": url, "iat": chrono::Utc::now().timestamp(),
    });
    if let Some(token) = token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes()
        )));
    }
    claims
}

/// POSTs a form with Basic credentials and, when given, a `DPoP` header.
pub async fn post_with_proof(
    api: &Api,
    path: &str,
    creds: &Creds,
    proof: Option<&str>,
    params: &[(&str, &str)],
) -> Reply {
    let mut request = api
        .http
        .post(api.url(path))
        .basic_auth(&creds.id, Some(&creds.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(params));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    Api::reply(request).await
}

async fn userinfo(api: &Api, authorization: &str, proof: Option<&str>) -> Reply {
    let mut request = api
        .http
        .get(api.url("/userinfo"))
        .header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    Api::reply(request).await
}

/// A JWT's claims, unverified: for reading what a verified token says.
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn challenge(reply: &Reply) -> String {
    reply.header("www-authenticate").unwrap_or_default()
}

async fn proof_events(deployment: &Deployment) -> i64 {
    deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'DpopProofAccepted'")
        .await
}

async fn a_proof_binds_the_token_and_introspection_and_userinfo_demand_the_key(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    let api_client = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    browser::user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    let key = Key::new();

    let back = Browser::new(&server)
        .code_flow(&browser::oidc_params(&app.id, "st-dpop"), "alice")
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let proof = key.proof("POST", &server.url("/token"), None);
    let token = post_with_proof(
        &api,
        "/token",
        &app,
        Some(&proof),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", browser::VERIFIER),
        ],
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.field("token_type"), "DPoP", "RFC 9449 §5");
    let access = token.field("access_token");
    assert_eq!(claims_of(&access)["cnf"]["jkt"], key.thumbprint());
    let bound = deployment
        .count(&format!(
            "SELECT count(*) FROM events WHERE event_type = 'AccessTokenIssued' AND CAST(payload AS text) LIKE '%{}%'",
            key.thumbprint()
        ))
        .await;
    assert_eq!(bound, 1, "the event names the key the token is bound to");
    let gid = claims_of(&access)["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let history = deployment
        .writ(&["audit", "history", "--grant", &gid])
        .success()
        .stdout();
    assert!(
        history.contains(&format!("jkt={}", key.thumbprint())),
        "the auditor sees the key: {history}"
    );
    assert_eq!(proof_events(&deployment).await, 1);

    let introspected = api.introspect(&app, &access).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"]["jkt"], key.thumbprint());

    let url = server.url("/userinfo");
    let before = deployment.event_count().await;
    let as_bearer = userinfo(&api, &format!("Bearer {access}"), None).await;
    assert_eq!(as_bearer.status, 401);
    assert!(
        challenge(&as_bearer).starts_with("DPoP "),
        "{}",
        as_bearer.body
    );
    let without_proof = userinfo(&api, &format!("DPoP {access}"), None).await;
    assert_eq!(
        (without_proof.status.as_u16(), without_proof.error()),
        (401, "invalid_dpop_proof")
    );
    let no_ath = key.proof("GET", &url, None);
    let wrong_ath = key.proof("GET", &url, Some("another token"));
    let other_key = Key::new().proof("GET", &url, Some(&access));
    let wrong_method = key.proof("POST", &url, Some(&access));
    for (bad, why) in [
        (no_ath, "no ath"),
        (wrong_ath, "wrong ath"),
        (other_key, "another key"),
        (wrong_method, "wrong htm"),
    ] {
        let refused = userinfo(&api, &format!("DPoP {access}"), Some(&bad)).await;
        assert_eq!(refused.status, 401, "{why}: {}", refused.body);
        assert!(
            challenge(&refused).contains("error=\"invalid_dpop_proof\""),
            "{why}: {}",
            challenge(&refused)
        );
        assert!(challenge(&refused).contains("algs=\"ES256"), "{why}");
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals write nothing"
    );

    let good = key.proof("GET", &url, Some(&access));
    let info = userinfo(&api, &format!("DPoP {access}"), Some(&good)).await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert!(info.body["sub"].is_string());
    let replayed = userinfo(&api, &format!("DPoP {access}"), Some(&good)).await;
    assert_eq!(replayed.status, 401, "a proof is used once");
    assert_eq!(replayed.error(), "invalid_dpop_proof");

    let unknown = userinfo(&api, "DPoP not-a-token", Some(&good)).await;
    assert!(
        challenge(&unknown).starts_with("DPoP ") && unknown.error() == "invalid_token",
        "answered in the scheme it came in: {}",
        challenge(&unknown)
    );

    // A bearer token is not accepted under the DPoP scheme.
    let bearer = api.client_credentials(&api_client).await;
    let proof = key.proof("GET", &url, Some(&bearer));
    let refused = userinfo(&api, &format!("DPoP {bearer}"), Some(&proof)).await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (401, "invalid_token")
    );
}

async fn every_rule_of_section_4_3_refuses_and_writes_nothing(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let key = Key::new();
    let url = server.url("/token");
    let cc = [("grant_type", "client_credentials")];

    let first = key.proof("POST", &url, None);
    let ok = post_with_proof(&api, "/token", &app, Some(&first), &cc).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.field("token_type"), "DPoP");

    let now = chrono::Utc::now().timestamp();
    let with = |name: &str, value: Value| {
        let mut claims = claims("POST", &url, None);
        claims[name] = value;
        key.proof_with(key.header(), claims)
    };
    let header_with = |name: &str, value: Value| {
        let mut header = key.header();
        header[name] = value;
        key.proof_with(header, claims("POST", &url, None))
    };
    let mut private_jwk = key.header()["jwk"].clone();
    private_jwk["d"] = json!("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw");
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.header()["jwk"]})),
        b64(claims("POST", &url, None))
    );
    let hs256 = {
        let input = format!(
            "{}.{}",
            b64(json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.header()["jwk"]})),
            b64(claims("POST", &url, None))
        );
        let mac_key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            key.public_jwk().to_string().as_bytes(),
        );
        let tag = ring::hmac::sign(&mac_key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let cases = [
        (first.clone(), "a replayed jti"),
        (with("htm", json!("GET")), "wrong htm"),
        (with("htu", json!(server.url("/par"))), "wrong htu"),
        (with("iat", json!(now - 120)), "a stale iat"),
        (with("iat", json!(now + 120)), "an iat in the future"),
        (header_with("typ", json!("jwt")), "wrong typ"),
        (header_with("jwk", private_jwk), "a private key in the jwk"),
        (unsigned, "alg none"),
        (hs256, "HS256"),
        (
            Key::new().proof_with(key.header(), claims("POST", &url, None)),
            "another key's signature",
        ),
        ("not-a-jwt".to_owned(), "garbage"),
    ];
    let before = deployment.event_count().await;
    for (proof, why) in cases {
        let refused = post_with_proof(&api, "/token", &app, Some(&proof), &cc).await;
        assert_eq!(
            (refused.status.as_u16(), refused.error()),
            (400, "invalid_dpop_proof"),
            "{why}: {}",
            refused.body
        );
    }
    let mut headers = HeaderMap::new();
    headers.append(
        "dpop",
        key.proof("POST", &url, None)
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    headers.append(
        "dpop",
        key.proof("POST", &url, None)
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let twice = Api::reply(
        api.http
            .post(api.url("/token"))
            .basic_auth(&app.id, Some(&app.secret))
            .headers(headers)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&cc)),
    )
    .await;
    assert_eq!(
        (twice.status.as_u16(), twice.error()),
        (400, "invalid_dpop_proof")
    );
    assert_eq!(deployment.event_count().await, before, "no refusal writes");
}

async fn a_proof_is_used_once_across_two_processes(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    // One public URL for both, as behind one load balancer.
    let issuer = "https://writ.example";
    let first = deployment.serve_with(&["--issuer", issuer]);
    let second = deployment.serve_with(&["--issuer", issuer]);
    let (to_first, to_second) = (Api::new(&first), Api::new(&second));
    let key = Key::new();
    let cc = [("grant_type", "client_credentials")];
    for round in 0..5 {
        let proof = key.proof("POST", &format!("{issuer}/token"), None);
        let (a, b) = futures::join!(
            post_with_proof(&to_first, "/token", &app, Some(&proof), &cc),
            post_with_proof(&to_second, "/token", &app, Some(&proof), &cc),
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 400],
            "round {round}: {} / {}",
            a.body,
            b.body
        );
    }
    assert_eq!(proof_events(&deployment).await, 5);
}

async fn dpop_bound_clients_must_prove_and_nonces_are_handed_out_when_required(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let bound = oauth::client(
        &deployment,
        &["--grant-type", "client_credentials", "--dpop-bound"],
    );
    let initial = "initial-access-token-for-dpop";
    let server = deployment.serve_with(&["--registration-token", initial, "--require-dpop-nonce"]);
    let api = Api::new(&server);
    let key = Key::new();
    let url = server.url("/token");
    let cc = [("grant_type", "client_credentials")];

    let discovery = api.discovery().await;
    let algs = discovery["dpop_signing_alg_values_supported"].to_string();
    assert!(algs.contains("ES256") && algs.contains("EdDSA"), "{algs}");

    let before = deployment.event_count().await;
    let without = post_with_proof(&api, "/token", &bound, None, &cc).await;
    assert_eq!(
        (without.status.as_u16(), without.error()),
        (400, "invalid_dpop_proof"),
        "{}",
        without.body
    );
    let no_nonce = post_with_proof(
        &api,
        "/token",
        &bound,
        Some(&key.proof("POST", &url, None)),
        &cc,
    )
    .await;
    assert_eq!(
        (no_nonce.status.as_u16(), no_nonce.error()),
        (400, "use_dpop_nonce")
    );
    let nonce = no_nonce.header("dpop-nonce").unwrap_or_default();
    assert!(!nonce.is_empty(), "RFC 9449 §8: the nonce to use");
    let forged = {
        let mut claims = claims("POST", &url, None);
        claims["nonce"] = json!(format!("{nonce}x"));
        key.proof_with(key.header(), claims)
    };
    let refused = post_with_proof(&api, "/token", &bound, Some(&forged), &cc).await;
    assert_eq!(refused.error(), "use_dpop_nonce");
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals write nothing"
    );

    let mut claims = claims("POST", &url, None);
    claims["nonce"] = json!(nonce);
    let proof = key.proof_with(key.header(), claims);
    let token = post_with_proof(&api, "/token", &bound, Some(&proof), &cc).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.field("token_type"), "DPoP");
    let next_nonce = token.header("dpop-nonce").unwrap_or_default();
    assert!(
        !next_nonce.is_empty(),
        "§8.2: the next nonce comes with the answer"
    );

    // Userinfo asks for the nonce too, in its DPoP challenge (§9); with it
    // the proof passes, and the client's own token then has no person.
    let access = token.field("access_token");
    let userinfo_url = server.url("/userinfo");
    let bare = key.proof("GET", &userinfo_url, Some(&access));
    let asked = userinfo(&api, &format!("DPoP {access}"), Some(&bare)).await;
    assert_eq!(
        (asked.status.as_u16(), asked.error()),
        (401, "use_dpop_nonce")
    );
    assert!(
        challenge(&asked).starts_with("DPoP "),
        "{}",
        challenge(&asked)
    );
    assert!(asked.header("dpop-nonce").is_some());
    // The nonce the token answer handed out works here too.
    let mut with_nonce = self::claims("GET", &userinfo_url, Some(&access));
    with_nonce["nonce"] = json!(next_nonce);
    let proved = key.proof_with(key.header(), with_nonce);
    let answered = userinfo(&api, &format!("DPoP {access}"), Some(&proved)).await;
    assert_eq!(
        (answered.status.as_u16(), answered.error()),
        (403, "insufficient_scope"),
        "{}",
        answered.body
    );

    // RFC 7591 registration takes the same setting, and shows it.
    let registered = Api::reply(
        api.http
            .post(api.url("/register"))
            .bearer_auth(initial)
            .json(&json!({
                "client_name": "bound", "grant_types": ["client_credentials"],
                "dpop_bound_access_tokens": true,
            })),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["dpop_bound_access_tokens"], true);
    let creds = Creds {
        id: registered.field("client_id"),
        secret: registered.field("client_secret"),
    };
    let without = post_with_proof(&api, "/token", &creds, None, &cc).await;
    assert_eq!(without.error(), "invalid_dpop_proof");
}
