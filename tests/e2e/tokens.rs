//! The token service seen from outside: an independent client library,
//! RFC 9068 JWTs checked by an independent JWT library against the JWKS,
//! key rotation, introspection and revocation with read-your-writes.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse,
    TokenUrl,
};
use serde_json::Value;

use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api};

writ_testing::on_both_backends!(
    an_independent_client_library_gets_client_credentials_password_and_refresh_tokens,
    access_tokens_are_rfc9068_jwts_that_verify_against_the_jwks,
    five_hundred_tokens_are_active_when_issued_and_inactive_when_revoked,
    rotated_keys_stay_published_and_old_tokens_stay_valid,
    disabling_a_client_kills_its_five_hundred_tokens_and_its_secret,
    a_client_that_answers_for_a_resource_introspects_the_tokens_issued_for_it,
);

async fn an_independent_client_library_gets_client_credentials_password_and_refresh_tokens(
    backend: Backend,
) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(&deployment, &["--scope", "read write"]);
    let app = oauth::client(
        &deployment,
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid profile",
        ],
    );
    deployment
        .writ_with_stdin(
            &["user", "create", "--username", "alice", "--password-stdin"],
            "correct horse battery\n",
        )
        .success();
    let server = deployment.serve();
    let api = Api::new(&server);
    let token_url = TokenUrl::new(api.url("/token")).unwrap_or_else(|e| panic!("{e}"));
    let http = api.http.clone();

    let service_client = BasicClient::new(ClientId::new(service.id.clone()))
        .set_client_secret(ClientSecret::new(service.secret.clone()))
        .set_token_uri(token_url.clone());
    let issued = service_client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("client credentials: {e:?}"));
    assert_eq!(
        issued
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["read".to_owned()])
    );
    assert!(issued.refresh_token().is_none(), "RFC 6749 §4.4.3");
    assert!(
        api.is_active(&service, issued.access_token().secret())
            .await
    );

    let app_client = BasicClient::new(ClientId::new(app.id.clone()))
        .set_client_secret(ClientSecret::new(app.secret.clone()))
        .set_token_uri(token_url);
    let first = app_client
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new("correct horse battery".into()),
        )
        .add_scope(Scope::new("openid".into()))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("password: {e:?}"));
    let refresh = first
        .refresh_token()
        .unwrap_or_else(|| panic!("the password grant issues a refresh token"));
    let second = app_client
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let rotated = second
        .refresh_token()
        .unwrap_or_else(|| panic!("rotation returns a new refresh token"));
    assert_ne!(rotated.secret(), refresh.secret());
    assert!(api.is_active(&app, second.access_token().secret()).await);
    let wrong = app_client
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new("wrong".into()),
        )
        .request_async(&http)
        .await;
    assert!(wrong.is_err(), "a wrong password gets no token");
}

pub async fn jwks(api: &Api) -> JwkSet {
    api.json("/jwks").await
}

/// Verifies an access token with the `jsonwebtoken` crate, not with
/// Writ's own code.
fn verify(token: &str, keys: &JwkSet, audience: &str, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    verified(token, keys, audience, issuer)
}

/// Any JWT of Writ's (access token, id_token), its signature, `aud`,
/// `iss` and `exp` checked by the `jsonwebtoken` crate against the JWKS.
pub fn verified(token: &str, keys: &JwkSet, audience: &str, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap_or_else(|e| panic!("{e}"));
    let kid = header.kid.unwrap_or_else(|| panic!("no kid"));
    let jwk = keys
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk).unwrap_or_else(|e| panic!("{e}"));
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the token does not verify: {e}"))
        .claims
}

async fn access_tokens_are_rfc9068_jwts_that_verify_against_the_jwks(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let resource = "https://api.example.com";
    let service = oauth::client(
        &deployment,
        &[
            "--scope",
            "read",
            "--audience",
            resource,
            "--audience",
            "https://other.example.com",
        ],
    );
    let server = deployment.serve();
    let api = Api::new(&server);
    let reply = api
        .token(
            &service,
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.field("access_token");
    let claims = verify(&token, &jwks(&api).await, resource, &api.base);
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
        "gid",
    ] {
        assert!(
            claims.get(claim).is_some(),
            "RFC 9068 claim {claim} missing: {claims}"
        );
    }
    assert_eq!(
        claims["aud"], resource,
        "RFC 8707: aud is the requested resource"
    );
    assert_eq!(claims["client_id"], service.id.as_str());
    let ttl = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert_eq!(ttl, 300, "the default access-token lifetime");
    let refused = api
        .token(
            &service,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error(), "invalid_target");
    let edd = deployment.serve_with(&["--signing-alg", "EdDSA"]);
    let api = Api::new(&edd);
    let token = api.client_credentials(&service).await;
    let header = jsonwebtoken::decode_header(&token).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    verify(&token, &jwks(&api).await, resource, &api.base);
}

async fn five_hundred_tokens_are_active_when_issued_and_inactive_when_revoked(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let jwt_client = oauth::client(&deployment, &[]);
    let opaque_client = oauth::client(&deployment, &["--token-format", "opaque"]);
    let server = deployment.serve();
    let api = Api::new(&server);
    crate::harness::rounds(500, 8, |round| {
        let api = &api;
        let creds = if round % 2 == 0 {
            &jwt_client
        } else {
            &opaque_client
        };
        async move {
            let token = api.client_credentials(creds).await;
            let answer = api.introspect(creds, &token).await;
            assert_eq!(
                answer["active"], true,
                "round {round}: issued then {answer}"
            );
            let writ_cursor = answer["writ_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let revoked = api.revoke(creds, &token).await;
            assert_eq!(revoked.status, 200);
            let cursor = revoked.header("writ-cursor").unwrap_or_default();
            assert!(
                cursor > writ_cursor,
                "round {round}: the revocation is later in the log"
            );
            let answer = api.introspect(creds, &token).await;
            assert_eq!(
                answer,
                serde_json::json!({"active": false}),
                "round {round}"
            );
        }
    })
    .await;
}

async fn rotated_keys_stay_published_and_old_tokens_stay_valid(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let service = oauth::client(&deployment, &[]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let old_token = api.client_credentials(&service).await;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default();
    let rotated = deployment
        .writ(&["--json", "keys", "rotate"])
        .success()
        .json();
    let new_kid = rotated["kid"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new_kid, old_kid);
    let listed = deployment
        .writ(&["--json", "keys", "list"])
        .success()
        .json();
    let status_of = |kid: &str| {
        listed
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .map(|k| k["status"].clone())
    };
    assert_eq!(status_of(&old_kid), Some("retired".into()));
    assert_eq!(status_of(&new_kid), Some("active".into()));
    // The running server picks up a rotation made by another process.
    let fresh = crate::harness::eventually("the server to sign with the new key", || async {
        let token = api.client_credentials(&service).await;
        let kid = jsonwebtoken::decode_header(&token).ok()?.kid?;
        (kid == new_kid).then_some(token)
    })
    .await;
    let published = jwks(&api).await;
    assert!(
        published.find(&old_kid).is_some(),
        "R50: the old key stays published"
    );
    assert!(published.find(&new_kid).is_some());
    assert!(api.is_active(&service, &old_token).await);
    assert!(api.is_active(&service, &fresh).await);
    let secrets = deployment
        .count("SELECT count(*) FROM signing_key_secrets")
        .await;
    assert_eq!(
        secrets, 4,
        "ES256 twice, EdDSA and RS256 (for id_tokens) once, each sealed"
    );
}

async fn disabling_a_client_kills_its_five_hundred_tokens_and_its_secret(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let doomed = oauth::client(&deployment, &["--audience", "rs"]);
    let bystander = oauth::client(&deployment, &[]);
    let resource_server = oauth::client(&deployment, &["--client-id", "rs"]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let tokens = std::sync::Mutex::new(Vec::new());
    crate::harness::rounds(500, 8, |_| {
        let (api, doomed, tokens) = (&api, &doomed, &tokens);
        async move {
            let token = api.client_credentials(doomed).await;
            tokens.lock().unwrap_or_else(|p| p.into_inner()).push(token);
        }
    })
    .await;
    let tokens = tokens.into_inner().unwrap_or_else(|p| p.into_inner());
    // Each introspected once, so that `serve` holds them in memory (ADR 0010).
    for token in &tokens {
        assert!(api.is_active(&resource_server, token).await);
    }
    let kept = api.client_credentials(&bystander).await;
    deployment
        .writ(&["client", "disable", &doomed.id])
        .success();
    // Read-your-writes: the CLI has exited, so every token is inactive now,
    // also to the resource server in its audience.
    for token in &tokens {
        assert_eq!(
            api.introspect(&resource_server, token).await,
            serde_json::json!({"active": false})
        );
    }
    let refused = api
        .token(&doomed, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        refused.status, 401,
        "the secret is refused: {}",
        refused.body
    );
    assert!(
        api.is_active(&bystander, &kept).await,
        "other clients are untouched"
    );
    eventually(
        "the policy to record GrantRevoked for every grant",
        || async {
            let revoked = deployment.count_revocations("client_disabled").await;
            (revoked == 500).then_some(())
        },
    )
    .await;
}

/// RFC 8707 and RFC 7662: client ids cannot be URIs, so a resource server
/// for `https://api.example/` introspects the tokens issued for it through
/// a client whose `resources` setting lists that URI, registered by RFC
/// 7591 or by the CLI; the resource-server crate does so end to end, with
/// a secret that only survives Basic when it is form-encoded first.
async fn a_client_that_answers_for_a_resource_introspects_the_tokens_issued_for_it(
    backend: Backend,
) {
    use writ_resource_server::{Config, Introspection, ResourceServer};

    const INITIAL: &str = "initial-access-token-for-tests-0123";
    let resource = "https://api.example/";
    let deployment = Deployment::with_keys(backend).await;
    let app = oauth::client(
        &deployment,
        &["--audience", resource, "--token-format", "opaque"],
    );
    let unrelated = oauth::client(&deployment, &[]);
    // RFC 6749 §2.3.1: `+`, `%`, `:` and non-ASCII must be form-encoded.
    let odd_secret = "a+b%20c:d é 0123456789abcdefghijklmnopqrstuvwxyz";
    let sdk_client = deployment
        .writ_with_stdin(
            &[
                "--json",
                "client",
                "create",
                "--name",
                "api sdk",
                "--resource",
                resource,
                "--secret-stdin",
            ],
            &format!("{odd_secret}\n"),
        )
        .success()
        .json();
    assert_eq!(sdk_client["resources"], serde_json::json!([resource]));
    let server = deployment.serve_with(&["--registration-token", INITIAL]);
    let api = Api::new(&server);
    let registered = api
        .http
        .post(api.url("/register"))
        .bearer_auth(INITIAL)
        .json(&serde_json::json!({"client_name": "api", "resources": [resource]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registered.status(), 201);
    let registered: Value = registered.json().await.unwrap_or_else(|e| panic!("{e}"));
    let resource_server = oauth::Creds {
        id: registered["client_id"].as_str().unwrap_or_default().into(),
        secret: registered["client_secret"]
            .as_str()
            .unwrap_or_default()
            .into(),
    };

    let issued = api
        .token(
            &app,
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let token = issued.field("access_token");
    assert_eq!(token.split('.').count(), 1, "an opaque token");
    assert_eq!(
        api.introspect(&unrelated, &token).await,
        serde_json::json!({"active": false}),
        "an unrelated confidential client sees nothing"
    );
    let seen = api.introspect(&resource_server, &token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["aud"], serde_json::json!([resource]));
    assert_eq!(seen["client_id"], app.id.as_str());
    let own = api
        .token(&unrelated, &[("grant_type", "client_credentials")])
        .await
        .field("access_token");
    assert!(
        !api.is_active(&resource_server, &own).await,
        "tokens for other audiences stay hidden"
    );

    let verifier = |client_id: &str, client_secret: &str| {
        let mut config = Config::new(api.base.clone(), resource);
        config.introspection = Some(Introspection {
            url: api.url("/introspect"),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        });
        ResourceServer::new(config)
    };
    let sdk_id = sdk_client["client_id"].as_str().unwrap_or_default();
    let sdk = verifier(sdk_id, odd_secret);
    let principal = sdk
        .authenticate(&token)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(principal.client_id.as_deref(), Some(app.id.as_str()));
    assert_eq!(sdk.introspection_calls(), 1);
    let bystander = verifier(&unrelated.id, &unrelated.secret);
    assert!(
        bystander.authenticate(&token).await.is_err(),
        "the token is inactive to a client not answering for the resource"
    );
}
