//! The FAPI 2.0 Security Profile (docs/fapi2.md) against the real binary:
//! per client (RFC 7591 or `writ client create --fapi2`) and server-wide
//! (`serve --fapi2`): pushed requests with their redirect URI,
//! `private_key_jwt` with the issuer alone as `aud`, DPoP on every token
//! request, 60-second codes, and refresh tokens bound to the DPoP key and
//! never rotated.

use serde_json::{json, Value};

use crate::browser::{self, Browser, REDIRECT_URI, VERIFIER};
use crate::dpop::Key;
use crate::harness::{Backend, Deployment, Server};
use crate::oauth::{self, form, Api, Reply};
use crate::private_key_jwt::{claims, keyed_client, Signer};

writ_testing::on_both_backends!(
    a_fapi2_client_pushes_proves_and_keeps_its_refresh_token,
    a_fapi2_server_holds_every_client_to_the_profile,
    a_fapi2_client_may_not_sign_with_rs256,
);

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A request authenticated by an assertion for `aud`, with a DPoP proof
/// for `path` when `key` is given.
async fn signed_post(
    server: &Server,
    path: &str,
    (client_id, signer, aud): (&str, &Signer, &str),
    key: Option<&Key>,
    params: &[(&str, &str)],
) -> Reply {
    let api = Api::new(server);
    let assertion = signer.assertion(&claims(client_id, aud));
    let mut all = vec![
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    all.extend_from_slice(params);
    let mut request = api
        .http
        .post(api.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&all));
    if let Some(key) = key {
        request = request.header("dpop", key.proof("POST", &server.url(path), None));
    }
    Api::reply(request).await
}

fn id_of(created: &Value) -> String {
    created["client_id"].as_str().unwrap_or_default().to_owned()
}

/// Seconds between the newest code's issue and expiry, from its row.
async fn code_lifetime_is(deployment: &Deployment, backend: Backend, secs: i64) -> bool {
    let sql = match backend {
        Backend::Sqlite => format!(
            "SELECT count(*) FROM tokens WHERE kind = 'code' \
             AND abs((julianday(expires_at) - julianday(issued_at)) * 86400 - {secs}) < 1"
        ),
        Backend::Postgres => format!(
            "SELECT count(*) FROM tokens WHERE kind = 'code' \
             AND abs(extract(epoch FROM (expires_at::timestamptz - issued_at::timestamptz)) - {secs}) < 1"
        ),
    };
    deployment.count(&sql).await == 1
}

async fn a_fapi2_client_pushes_proves_and_keeps_its_refresh_token(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let signer = Signer::new("fapi");
    let refused = deployment.writ(&["client", "create", "--name", "no keys", "--fapi2"]);
    let line = refused.refused();
    assert!(line.contains("FAPI 2.0"), "{line}");
    let created = keyed_client(
        &deployment,
        &signer,
        &[
            "--name",
            "bank app",
            "--fapi2",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "openid profile email offline_access",
        ],
    );
    assert_eq!(created["fapi2_security_profile"], true, "{created}");
    assert_eq!(created["require_pushed_authorization_requests"], true);
    assert_eq!(created["dpop_bound_access_tokens"], true);
    let id = id_of(&created);
    browser::user(&deployment, "alice");
    let initial = "initial-access-token-for-fapi2";
    let server = deployment.serve_with(&["--code-ttl", "5m", "--registration-token", initial]);
    let api = Api::new(&server);
    let issuer = server.url("");
    let (key, thief) = (Key::new(), Key::new());
    let me = (id.as_str(), &signer, issuer.as_str());

    // RFC 7591: the profile needs keys, and sets what it implies.
    let register = |body: Value| {
        Api::reply(
            api.http
                .post(api.url("/register"))
                .bearer_auth(initial)
                .json(&body),
        )
    };
    let with_secret = register(json!({"client_name": "x", "redirect_uris": [REDIRECT_URI], "fapi2_security_profile": true})).await;
    assert_eq!(
        with_secret.error(),
        "invalid_client_metadata",
        "{}",
        with_secret.body
    );
    let registered = register(json!({
        "client_name": "x", "redirect_uris": [REDIRECT_URI], "fapi2_security_profile": true,
        "token_endpoint_auth_method": "private_key_jwt", "jwks": signer.jwks(),
    }))
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(
        registered.body["require_pushed_authorization_requests"],
        true
    );
    assert_eq!(registered.body["dpop_bound_access_tokens"], true);
    assert_eq!(registered.body["id_token_signed_response_alg"], "ES256");
    let rs256 = register(json!({
        "client_name": "x", "redirect_uris": [REDIRECT_URI], "fapi2_security_profile": true,
        "token_endpoint_auth_method": "private_key_jwt", "jwks": signer.jwks(),
        "id_token_signed_response_alg": "RS256",
    }))
    .await;
    assert_eq!(rs256.error(), "invalid_client_metadata", "{}", rs256.body);

    let plain = Browser::new(&server)
        .authorize(&browser::oidc_params(&id, "st-plain"))
        .await;
    assert_eq!(
        plain.redirect_query(REDIRECT_URI)["error"],
        "invalid_request"
    );

    let params = browser::oidc_params(&id, "st-fapi");
    let before = deployment.event_count().await;
    let endpoint_aud = server.url("/par");
    let loose = signed_post(
        &server,
        "/par",
        (&id, &signer, &endpoint_aud),
        None,
        &params,
    )
    .await;
    assert_eq!(
        (loose.status.as_u16(), loose.error()),
        (401, "invalid_client"),
        "aud is the issuer alone"
    );
    let no_redirect: Vec<_> = params
        .iter()
        .filter(|(n, _)| *n != "redirect_uri")
        .copied()
        .collect();
    let refused = signed_post(&server, "/par", me, None, &no_redirect).await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (400, "invalid_request")
    );
    assert_eq!(
        deployment.event_count().await,
        before + 1,
        "only the assertion is recorded"
    );

    let pushed = signed_post(&server, "/par", me, Some(&key), &params).await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let request_uri = pushed.field("request_uri");
    let back = Browser::new(&server)
        .code_flow(
            &[("client_id", id.as_str()), ("request_uri", &request_uri)],
            "alice",
        )
        .await;
    let query = back.redirect_query(REDIRECT_URI);
    assert_eq!(query["iss"], issuer, "RFC 9207");
    assert!(
        code_lifetime_is(&deployment, backend, 60).await,
        "codes live 60 s, not code_ttl's 5 m"
    );
    let code = [
        ("grant_type", "authorization_code"),
        ("code", query["code"].as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let unproved = signed_post(&server, "/token", me, None, &code).await;
    assert_eq!(unproved.error(), "invalid_dpop_proof", "{}", unproved.body);
    let tokens = signed_post(&server, "/token", me, Some(&key), &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.field("token_type"), "DPoP");
    let id_token_header = tokens.field("id_token");
    let id_token_header = id_token_header.split('.').next().unwrap_or_default();
    let id_token_header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            id_token_header,
        )
        .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert_eq!(id_token_header["alg"], "ES256", "§5.4.1: no RS256");
    let refresh_token = tokens.field("refresh_token");

    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let stolen = signed_post(&server, "/token", me, Some(&thief), &refresh).await;
    assert_eq!(stolen.error(), "invalid_grant", "bound to the DPoP key");
    for round in 0..2 {
        let refreshed = signed_post(&server, "/token", me, Some(&key), &refresh).await;
        assert_eq!(refreshed.status, 200, "round {round}: {}", refreshed.body);
        assert!(
            refreshed.body.get("refresh_token").is_none(),
            "not rotated: {}",
            refreshed.body
        );
    }
    let rotations = deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'RefreshTokenRotated'")
        .await;
    assert_eq!(rotations, 0);
}

async fn a_fapi2_server_holds_every_client_to_the_profile(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let secret_client = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let signer = Signer::new("k");
    let keyed = keyed_client(
        &deployment,
        &signer,
        &["--name", "keyed", "--grant-type", "client_credentials"],
    );
    let id = id_of(&keyed);
    let server = deployment.serve_with(&["--fapi2"]);
    let api = Api::new(&server);
    let issuer = server.url("");

    let discovery = api.discovery().await;
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(discovery["require_pushed_authorization_requests"], true);

    let before = deployment.event_count().await;
    let cc = [("grant_type", "client_credentials")];
    let with_secret = api.token(&secret_client, &cc).await;
    assert_eq!(
        (with_secret.status.as_u16(), with_secret.error()),
        (401, "invalid_client")
    );
    assert!(with_secret.header("www-authenticate").is_some());
    let revoked = api
        .post("/revoke", Some(&secret_client), form(&[("token", "x")]))
        .await;
    assert_eq!(
        revoked.status, 401,
        "every endpoint of the profile's clients"
    );
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals write nothing"
    );
    // Introspection is for resource servers, which keep their secrets.
    let introspected = api
        .post("/introspect", Some(&secret_client), form(&[("token", "x")]))
        .await;
    assert_eq!(introspected.status, 200, "{}", introspected.body);
    let algs = discovery["dpop_signing_alg_values_supported"].to_string();
    assert!(
        !algs.contains("RS256") && algs.contains("PS256"),
        "§5.4.1: {algs}"
    );

    let me = (id.as_str(), &signer, issuer.as_str());
    let unproved = signed_post(&server, "/token", me, None, &cc).await;
    assert_eq!(unproved.error(), "invalid_dpop_proof", "{}", unproved.body);
    let token = signed_post(&server, "/token", me, Some(&Key::new()), &cc).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.field("token_type"), "DPoP");

    // §5.3.2.1: clocks may be up to ten seconds ahead, for assertions and
    // proofs alike; further is refused.
    for (secs, admitted) in [(8, true), (30, false)] {
        let now = chrono::Utc::now().timestamp();
        let mut assertion = claims(&id, &issuer);
        assertion["nbf"] = json!(now + secs);
        let key = Key::new();
        let mut proof = crate::dpop::claims("POST", &server.url("/token"), None);
        proof["iat"] = json!(now + secs);
        let reply = Api::reply(
            api.http
                .post(api.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("dpop", key.proof_with(key.header(), proof))
                .body(form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &signer.assertion(&assertion)),
                ])),
        )
        .await;
        assert_eq!(
            reply.status == 200,
            admitted,
            "{secs} s ahead: {}",
            reply.body
        );
    }
}

/// §5.4.1: a FAPI client's RS256 assertions, request objects and DPoP
/// proofs are refused, though the RSA key is registered; its ES256 key
/// works. The RSA key is made and used through `writ-infra`'s signer.
async fn a_fapi2_client_may_not_sign_with_rs256(backend: Backend) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use writ_infra::signing::keypair::generate;
    use writ_infra::signing::Signer as RsaSigner;

    let deployment = Deployment::with_keys(backend).await;
    let es256 = Signer::new("ec");
    let rsa = generate("RS256").unwrap_or_else(|e| panic!("{e}"));
    let rsa_signer =
        RsaSigner::from_pkcs8(&rsa.kid, "RS256", &rsa.pkcs8).unwrap_or_else(|e| panic!("{e}"));
    let sign = |header: Value, claims: Value| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = rsa_signer
            .sign(input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let jwks = json!({"keys": [es256.jwk(), rsa.public_jwk]});
    let jwks_file = deployment.data.path().join("fapi-jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let path = jwks_file.to_string_lossy().into_owned();
    let created = deployment
        .writ(&[
            "--json",
            "client",
            "create",
            "--name",
            "bank",
            "--fapi2",
            "--jwks-file",
            &path,
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "openid profile email offline_access",
        ])
        .success()
        .json();
    let id = id_of(&created);
    let server = deployment.serve();
    let issuer = server.url("");
    let par = server.url("/par");
    let api = Api::new(&server);
    let params = browser::oidc_params(&id, "st-rsa");
    let post = |assertion: String, proof: Option<String>, extra: Vec<(String, String)>| {
        let mut all = vec![
            ("client_assertion_type".to_owned(), JWT_BEARER.to_owned()),
            ("client_assertion".to_owned(), assertion),
        ];
        all.extend(extra);
        let mut request = api
            .http
            .post(api.url("/par"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(
                &all.iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ));
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        Api::reply(request)
    };
    let plain: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();

    let rs256_assertion = sign(
        json!({"alg": "RS256", "kid": rsa.kid, "typ": "JWT"}),
        claims(&id, &issuer),
    );
    let refused = post(rs256_assertion, None, plain.clone()).await;
    assert_eq!(
        (refused.status.as_u16(), refused.error()),
        (401, "invalid_client")
    );

    let before = deployment.event_count().await;
    let rsa_jwk = json!({
        "kty": "RSA", "n": jwks["keys"][1]["n"], "e": jwks["keys"][1]["e"],
    });
    let proof = sign(
        json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa_jwk}),
        crate::dpop::claims("POST", &par, None),
    );
    let refused = post(
        es256.assertion(&claims(&id, &issuer)),
        Some(proof),
        plain.clone(),
    )
    .await;
    assert_eq!(refused.error(), "invalid_dpop_proof", "{}", refused.body);
    let mut object = json!({
        "iss": id, "aud": issuer, "client_id": id,
        "exp": chrono::Utc::now().timestamp() + 60,
    });
    for (name, value) in &params {
        object[*name] = json!(value);
    }
    let request_object = sign(
        json!({"alg": "RS256", "kid": rsa.kid, "typ": "oauth-authz-req+jwt"}),
        object,
    );
    let refused = post(
        es256.assertion(&claims(&id, &issuer)),
        None,
        vec![("request".to_owned(), request_object)],
    )
    .await;
    assert_eq!(
        refused.error(),
        "invalid_request_object",
        "{}",
        refused.body
    );
    let accepted_assertions = 2;
    assert_eq!(
        deployment.event_count().await,
        before + accepted_assertions,
        "only the ES256 assertions are recorded"
    );
    let pushed = post(es256.assertion(&claims(&id, &issuer)), None, plain).await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
}
