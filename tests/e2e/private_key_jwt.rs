//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9) against the
//! real binary: assertions signed here with `ring` (independent of Writ's
//! code) authenticate at the token, PAR, introspection and revocation
//! endpoints, once each; every malformed or replayed assertion is a 401
//! that records nothing; registration takes `jwks` or `jwks_uri`, and a
//! `jwks_uri` is fetched.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{self, REDIRECT_URI};
use crate::harness::{Backend, Deployment};
use crate::oauth::{form, Api, Reply};

writ_testing::on_both_backends!(
    assertions_authenticate_at_every_client_endpoint_once_each,
    registration_takes_jwks_or_a_jwks_uri_that_is_fetched,
);

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const INITIAL: &str = "initial-access-token-for-private-key-jwt";

pub struct Signer {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Signer {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            pair,
            kid: kid.to_owned(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk()]})
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    pub fn assertion(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }
}

/// A client created with the CLI that authenticates with `signer`'s key
/// (`--jwks-file`); `writ client create --json`'s answer.
pub fn keyed_client(deployment: &Deployment, signer: &Signer, args: &[&str]) -> Value {
    let jwks_file = deployment
        .data
        .path()
        .join(format!("jwks-{}.json", rand::random::<u32>()));
    std::fs::write(&jwks_file, signer.jwks().to_string()).unwrap_or_else(|e| panic!("{e}"));
    let path = jwks_file.to_string_lossy().into_owned();
    let mut all = vec!["--json", "client", "create", "--jwks-file", path.as_str()];
    all.extend_from_slice(args);
    deployment.writ(&all).success().json()
}

pub fn claims(client_id: &str, aud: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "jti": format!("jti-{}", rand::random::<u64>()),
        "iat": now, "exp": now + 60,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

pub async fn post_asserted(
    api: &Api,
    path: &str,
    assertion: &str,
    params: &[(&str, &str)],
) -> Reply {
    let mut all = vec![
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    all.extend_from_slice(params);
    api.post(path, None, form(&all)).await
}

async fn assertion_events(deployment: &Deployment) -> i64 {
    deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'ClientAssertionAccepted'")
        .await
}

async fn assertions_authenticate_at_every_client_endpoint_once_each(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let signer = Signer::new("k1");
    let created = keyed_client(
        &deployment,
        &signer,
        &[
            "--name",
            "signed",
            "--grant-type",
            "client_credentials",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "openid api",
        ],
    );
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert!(
        created.get("client_secret").is_none(),
        "no secret: {created}"
    );
    let id = created["client_id"].as_str().unwrap_or_default().to_owned();
    let secret_client = browser::web_client(&deployment, &[]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let issuer = server.url("");
    let issuer = issuer.trim_end_matches('/');
    let cc = [("grant_type", "client_credentials")];

    let first = signer.assertion(&claims(&id, issuer));
    let token = post_asserted(&api, "/token", &first, &cc).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(
        assertion_events(&deployment).await,
        1,
        "the assertion is recorded"
    );
    let told = deployment
        .count(
            "SELECT count(*) FROM events WHERE event_type = 'AccessTokenIssued' \
             AND CAST(metadata AS text) LIKE '%client_auth%private_key_jwt%'",
        )
        .await;
    assert_eq!(
        told, 1,
        "the token's event says how its client authenticated"
    );
    let access = token.field("access_token");

    let before = deployment.event_count().await;
    let replayed = post_asserted(&api, "/token", &first, &cc).await;
    assert_eq!(
        (replayed.status.as_u16(), replayed.error()),
        (401, "invalid_client")
    );
    assert!(replayed.header("www-authenticate").is_some());
    assert_eq!(
        deployment.event_count().await,
        before,
        "a replay records nothing"
    );

    // The endpoint's own URL is an audience too, at every endpoint.
    let at_token = signer.assertion(&claims(&id, &format!("{issuer}/token")));
    assert_eq!(
        post_asserted(&api, "/token", &at_token, &cc).await.status,
        200
    );
    let introspected = post_asserted(
        &api,
        "/introspect",
        &signer.assertion(&claims(&id, &format!("{issuer}/introspect"))),
        &[("token", &access)],
    )
    .await;
    assert_eq!(introspected.body["active"], true, "{}", introspected.body);
    let mut pushed = browser::oidc_params(&id, "st");
    pushed.retain(|(name, _)| *name != "client_id");
    pushed.push(("scope", "openid"));
    pushed.retain(|(name, value)| *name != "scope" || *value == "openid");
    let par = post_asserted(
        &api,
        "/par",
        &signer.assertion(&claims(&id, issuer)),
        &pushed,
    )
    .await;
    assert_eq!(par.status, 201, "{}", par.body);
    let revoked = post_asserted(
        &api,
        "/revoke",
        &signer.assertion(&claims(&id, issuer)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(assertion_events(&deployment).await, 5);

    let before = deployment.event_count().await;
    let now = chrono::Utc::now().timestamp();
    let stranger = Signer::new("k1");
    let good = claims(&id, issuer);
    let public_jwk = signer.jwk().to_string();
    let hmac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_jwk.as_bytes()),
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
            URL_SAFE_NO_PAD.encode(good.to_string())
        )
        .as_bytes(),
    );
    let hs256 = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
        URL_SAFE_NO_PAD.encode(good.to_string()),
        URL_SAFE_NO_PAD.encode(hmac.as_ref())
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(&id, issuer).to_string())
    );
    let mut no_jti = claims(&id, issuer);
    no_jti.as_object_mut().map(|c| c.remove("jti"));
    let refused = [
        ("another key", stranger.assertion(&claims(&id, issuer))),
        (
            "another audience",
            signer.assertion(&claims(&id, "https://elsewhere.example")),
        ),
        (
            "expired",
            signer.assertion(&with(claims(&id, issuer), "exp", json!(now - 5))),
        ),
        (
            "living an hour",
            signer.assertion(&with(claims(&id, issuer), "exp", json!(now + 3600))),
        ),
        (
            "not yet valid",
            signer.assertion(&with(claims(&id, issuer), "nbf", json!(now + 300))),
        ),
        ("no jti", signer.assertion(&no_jti)),
        (
            "iss is not the client",
            signer.assertion(&with(claims(&id, issuer), "iss", json!("someone"))),
        ),
        ("alg none", none),
        ("HS256 keyed with the public key", hs256),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (what, assertion) in refused {
        let reply = post_asserted(&api, "/token", &assertion, &cc).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (401, "invalid_client"),
            "{what}: {}",
            reply.body
        );
        assert!(reply.header("www-authenticate").is_some(), "{what}");
    }
    // A client that has a secret cannot switch to assertions, nor the
    // reverse; two methods at once are refused.
    let borrowed = signer.assertion(&claims(&secret_client.id, issuer));
    let reply = post_asserted(&api, "/token", &borrowed, &cc).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (401, "invalid_client")
    );
    let reply = api
        .post(
            "/token",
            None,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "guess"),
            ]),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (401, "invalid_client")
    );
    let reply = api
        .post(
            "/token",
            None,
            form(&[("grant_type", "client_credentials"), ("client_id", &id)]),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (401, "invalid_client"),
        "a private_key_jwt client is not public"
    );
    let both = api
        .post(
            "/token",
            Some(&secret_client),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &signer.assertion(&claims(&id, issuer))),
            ]),
        )
        .await;
    assert_eq!(
        (both.status.as_u16(), both.error()),
        (400, "invalid_request")
    );
    let wrong_type = api
        .post(
            "/token",
            None,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:x"),
                ("client_assertion", &signer.assertion(&claims(&id, issuer))),
            ]),
        )
        .await;
    assert_eq!(
        (wrong_type.status.as_u16(), wrong_type.error()),
        (401, "invalid_client")
    );
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals record nothing"
    );
}

/// Serves `keys` at `http://127.0.0.1:<port>/jwks` until the test ends;
/// a `None` answers 500.
async fn jwks_server(keys: Arc<Mutex<Option<Value>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let current = keys.lock().map(|k| k.clone()).unwrap_or(None);
                let (status, body) = match current {
                    Some(keys) => ("200 OK", keys.to_string()),
                    None => ("500 Internal Server Error", "{}".to_owned()),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/jwks")
}

async fn register(api: &Api, metadata: &Value) -> Reply {
    Api::reply(
        api.http
            .post(api.url("/register"))
            .bearer_auth(INITIAL)
            .json(metadata),
    )
    .await
}

async fn registration_takes_jwks_or_a_jwks_uri_that_is_fetched(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let signer = Signer::new("rotating-1");
    let served = Arc::new(Mutex::new(Some(signer.jwks())));
    let jwks_uri = jwks_server(served.clone()).await;
    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    let issuer = server.url("");
    let issuer = issuer.trim_end_matches('/');
    let base = json!({
        "client_name": "signed service", "grant_types": ["client_credentials"], "scope": "api",
        "token_endpoint_auth_method": "private_key_jwt",
    });
    let before = deployment.event_count().await;
    let refusals = [
        ("neither jwks nor jwks_uri", json!({})),
        ("both", json!({"jwks": signer.jwks(), "jwks_uri": jwks_uri})),
        (
            "a private key",
            json!({"jwks": {"keys": [with(signer.jwk(), "d", json!("c2VjcmV0"))]}}),
        ),
        (
            "a symmetric key",
            json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        (
            "plain http off loopback",
            json!({"jwks_uri": "http://keys.example/jwks"}),
        ),
        (
            "the cloud's metadata address",
            json!({"jwks_uri": "http://169.254.169.254/latest"}),
        ),
    ];
    for (what, extra) in refusals {
        let mut metadata = base.clone();
        for (name, value) in extra.as_object().into_iter().flatten() {
            metadata[name] = value.clone();
        }
        let reply = register(&api, &metadata).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, "invalid_client_metadata"),
            "{what}: {}",
            reply.body
        );
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refused registrations record nothing"
    );

    let mut metadata = base.clone();
    metadata["jwks_uri"] = json!(jwks_uri);
    let registered = register(&api, &metadata).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(
        registered.body["token_endpoint_auth_method"],
        "private_key_jwt"
    );
    assert_eq!(registered.body["jwks_uri"], json!(jwks_uri));
    assert!(registered.body.get("client_secret").is_none());
    let id = registered.field("client_id");
    let cc = [("grant_type", "client_credentials")];
    let reply = post_asserted(&api, "/token", &signer.assertion(&claims(&id, issuer)), &cc).await;
    assert_eq!(
        reply.status, 200,
        "fetched from the jwks_uri: {}",
        reply.body
    );

    // RFC 7592: the registration access token cannot change how the
    // client authenticates, nor its keys: that would hand the client's
    // identity to whoever holds the token.
    let management = registered.field("registration_client_uri");
    let registration_token = registered.field("registration_access_token");
    let mut current = Api::reply(api.http.get(&management).bearer_auth(&registration_token))
        .await
        .body;
    // The answer carries the token to use next (RFC 7592 §3).
    let registration_token = current["registration_access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for field in [
        "registration_client_uri",
        "client_id_issued_at",
        "registration_access_token",
    ] {
        current.as_object_mut().map(|c| c.remove(field));
    }
    let before = deployment.event_count().await;
    for (what, field, value) in [
        (
            "turning public",
            "token_endpoint_auth_method",
            json!("none"),
        ),
        (
            "taking a secret",
            "token_endpoint_auth_method",
            json!("client_secret_basic"),
        ),
        (
            "other keys",
            "jwks_uri",
            json!("https://attacker.example/jwks"),
        ),
    ] {
        let mut body = current.clone();
        body[field] = value;
        if what == "turning public" {
            body["grant_types"] = json!(["refresh_token"]);
        }
        let reply = Api::reply(
            api.http
                .put(&management)
                .bearer_auth(&registration_token)
                .json(&body),
        )
        .await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, "invalid_client_metadata"),
            "{what}: {}",
            reply.body
        );
    }
    assert_eq!(deployment.event_count().await, before);

    let mut inline = base.clone();
    inline["jwks"] = signer.jwks();
    let registered = register(&api, &inline).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let inline_id = registered.field("client_id");
    // The served set is gone: the inline client does not depend on it.
    *served.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let reply = post_asserted(
        &api,
        "/token",
        &signer.assertion(&claims(&inline_id, issuer)),
        &cc,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
