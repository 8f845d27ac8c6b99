//! Token exchange (RFC 8693) over raw HTTP against the real binary: a
//! chain of three services each exchanging the token it was called with,
//! delegation recorded in nested `act` claims, the audit's lineage and
//! who-can answers, and a revocation of the root reaching every
//! descendant at once and, through the revocation feed, a resource server.

use jsonwebtoken::jwk::JwkSet;
use serde_json::{json, Value};

use crate::browser::{self, Browser, CHALLENGE, REDIRECT_URI, VERIFIER};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api, Creds, Reply};
use crate::revocation_feed::{sse_resource_server, ISSUER};

writ_testing::on_both_backends!(
    a_chain_of_three_exchanges_nests_its_actors_and_dies_with_its_root,
    exchanges_never_widen_and_refuse_what_they_cannot_trust,
);

pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const SCOPES: &str = "openid offline_access orders:read orders:write";

/// A back-end service that may exchange tokens and get its own.
fn service(deployment: &Deployment, name: &str, extra: &[&str]) -> Creds {
    let mut args = vec![
        "--name",
        name,
        "--grant-type",
        "token_exchange",
        "--grant-type",
        "client_credentials",
        "--scope",
        "orders:read orders:write",
    ];
    args.extend_from_slice(extra);
    oauth::client(deployment, &args)
}

/// The person's app, whose access tokens are for `audience`.
fn app(deployment: &Deployment, audience: &str) -> Creds {
    oauth::client(
        deployment,
        &[
            "--name",
            "Shop",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            SCOPES,
            "--audience",
            audience,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "token_exchange",
        ],
    )
}

/// alice signs in to the app; its access and refresh tokens.
async fn signed_in(api: &Api, server: &crate::harness::Server, shop: &Creds) -> (String, String) {
    let browser = Browser::new(server);
    let back = browser
        .code_flow(
            &[
                ("client_id", &shop.id),
                ("redirect_uri", REDIRECT_URI),
                ("response_type", "code"),
                ("scope", SCOPES),
                ("state", "s"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
            "alice",
        )
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let reply = api
        .token(
            shop,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    (reply.field("access_token"), reply.field("refresh_token"))
}

async fn exchange(api: &Api, client: &Creds, params: &[(&str, &str)]) -> Reply {
    let mut all = vec![("grant_type", EXCHANGE)];
    all.extend_from_slice(params);
    api.token(client, &all).await
}

/// `subject` exchanged by `client`, acting with its own token, for `audience`.
async fn delegate(api: &Api, client: &Creds, subject: &str, audience: &str, scope: &str) -> String {
    let actor = api.client_credentials(client).await;
    let reply = exchange(
        api,
        client,
        &[
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &actor),
            ("actor_token_type", ACCESS_TOKEN),
            ("audience", audience),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.field("issued_token_type"), ACCESS_TOKEN);
    assert_eq!(reply.field("token_type"), "Bearer");
    assert!(reply.body.get("refresh_token").is_none(), "{}", reply.body);
    reply.field("access_token")
}

fn audit(deployment: &Deployment, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json", "audit"];
    all.extend_from_slice(args);
    let run = deployment.writ(&all).success();
    serde_json::from_str::<Value>(&run.stdout())
        .ok()
        .and_then(|value| value.as_array().cloned())
        .unwrap_or_else(|| panic!("{}", run.stdout()))
}

async fn a_chain_of_three_exchanges_nests_its_actors_and_dies_with_its_root(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let orders = service(&deployment, "orders", &[]);
    let billing = service(&deployment, "billing", &[]);
    let ledger = service(&deployment, "ledger", &[]);
    let archive = service(&deployment, "archive", &["--revocation-feed"]);
    let shop = app(&deployment, &orders.id);
    browser::user(&deployment, "alice");
    let server = deployment.serve_with(&["--issuer", ISSUER]);
    let api = Api::new(&server);
    let discovery = api.discovery().await;
    assert!(discovery["grant_types_supported"]
        .as_array()
        .is_some_and(|grants| grants.contains(&json!(EXCHANGE))));
    let resource_server = sse_resource_server(&server, &archive).await;

    let (user_token, refresh) = signed_in(&api, &server, &shop).await;
    let first = delegate(
        &api,
        &orders,
        &user_token,
        &billing.id,
        "orders:read orders:write",
    )
    .await;
    let second = delegate(&api, &billing, &first, &ledger.id, "orders:read").await;
    let third = delegate(&api, &ledger, &second, &archive.id, "orders:read").await;

    // The last token, checked by an independent JWT library: alice's, held
    // by the ledger, for the archive, with every actor nested (§4.1).
    let keys: JwkSet = api.json("/jwks").await;
    let root = crate::tokens::verified(&user_token, &keys, &orders.id, ISSUER);
    let claims = crate::tokens::verified(&third, &keys, &archive.id, ISSUER);
    assert_eq!(claims["sub"], root["sub"], "on alice's behalf");
    assert_eq!(claims["client_id"], json!(ledger.id));
    assert_eq!(claims["scope"], "orders:read");
    let chain = json!({
        "sub": ledger.id, "client_id": ledger.id,
        "act": {"sub": billing.id, "client_id": billing.id,
                "act": {"sub": orders.id, "client_id": orders.id}}
    });
    assert_eq!(claims["act"], chain);
    let seen = api.introspect(&archive, &third).await;
    assert_eq!(
        (seen["active"].clone(), seen["act"].clone()),
        (json!(true), chain)
    );
    assert!(resource_server.authenticate(&third).await.is_ok());

    // The audit: the lineage runs from alice's sign-in to the last grant,
    // and who-can shows the delegated access with its actors.
    let gid = claims["gid"].as_str().unwrap_or_default().to_owned();
    let lineage = audit(&deployment, &["lineage", "--grant", &gid]);
    let events: Vec<&str> = lineage
        .iter()
        .filter_map(|row| row["event"].as_str())
        .collect();
    assert_eq!(
        events.iter().filter(|e| **e == "GrantExchanged").count(),
        3,
        "{events:?}"
    );
    for expected in ["SessionStarted", "CodeIssued", "CodeRedeemed"] {
        assert!(events.contains(&expected), "{expected} in {events:?}");
    }
    let now = chrono::Utc::now().to_rfc3339();
    let who = audit(
        &deployment,
        &["who-can", "--scope", "orders:read", "--at", &now],
    );
    let delegated = who
        .iter()
        .find(|row| row["gid"] == json!(gid))
        .unwrap_or_else(|| panic!("the last grant can read orders: {who:?}"));
    assert_eq!(
        delegated["act"],
        json!(format!("{} <- {} <- {}", ledger.id, billing.id, orders.id))
    );
    assert_eq!(delegated["client_id"], json!(ledger.id));

    // Revoking the root ends every descendant before the answer leaves.
    assert_eq!(api.revoke(&shop, &refresh).await.status, 200);
    for (holder_audience, token) in [(&billing, &first), (&ledger, &second), (&archive, &third)] {
        assert!(
            !api.is_active(holder_audience, token).await,
            "a descendant is inactive at once"
        );
    }
    let again = exchange(
        &api,
        &ledger,
        &[
            ("subject_token", &second),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        again.error(),
        "invalid_request",
        "R72: no exchange revives it"
    );
    eventually("each descendant's own revocation in the log", || async {
        (deployment.count_revocations("parent_revoked").await == 3).then_some(())
    })
    .await;
    eventually("the archive's resource server to hear of it", || async {
        resource_server
            .authenticate(&third)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert_eq!(
        resource_server.introspection_calls(),
        0,
        "from the feed alone"
    );
}

/// Who asks, with what, and the status, error and reason expected.
type Case<'a> = (&'a Creds, Vec<(&'a str, String)>, u16, &'a str, &'a str);

async fn exchanges_never_widen_and_refuse_what_they_cannot_trust(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    // Its own tokens live an hour; exchanged ones never outlive the subject.
    let orders = service(&deployment, "orders", &["--access-token-ttl", "1h"]);
    let billing = service(&deployment, "billing", &[]);
    let bystander = service(&deployment, "bystander", &[]);
    let plain = oauth::client(&deployment, &["--scope", "orders:read"]);
    let shop = app(&deployment, &orders.id);
    browser::user(&deployment, "alice");
    let public = deployment
        .writ(&[
            "client",
            "create",
            "--name",
            "p",
            "--public",
            "--grant-type",
            "token_exchange",
        ])
        .refused();
    assert!(public.contains("public"), "{public}");
    let server = deployment.serve();
    let api = Api::new(&server);
    let (user_token, refresh) = signed_in(&api, &server, &shop).await;
    let own = api.client_credentials(&orders).await;
    let before = deployment.event_count().await;

    let subject = |token: &str| {
        vec![
            ("subject_token", token.to_owned()),
            ("subject_token_type", ACCESS_TOKEN.to_owned()),
        ]
    };
    let cases: Vec<Case> = vec![
        (
            &plain,
            subject(&user_token),
            400,
            "unauthorized_client",
            "a client without the grant",
        ),
        (
            &bystander,
            subject(&user_token),
            400,
            "invalid_request",
            "a token neither issued to it nor naming it",
        ),
        (
            &orders,
            subject("not-a-token"),
            400,
            "invalid_request",
            "garbage",
        ),
        (
            &orders,
            subject(&own),
            400,
            "invalid_request",
            "a client's own token: no person",
        ),
        (
            &orders,
            vec![
                ("subject_token", user_token.clone()),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token".into(),
                ),
            ],
            400,
            "invalid_request",
            "an unsupported subject_token_type",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![("requested_token_type", REFRESH_TOKEN.into())],
            ]
            .concat(),
            400,
            "invalid_request",
            "a refresh token requested",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![
                    ("actor_token", "garbage".into()),
                    ("actor_token_type", ACCESS_TOKEN.into()),
                ],
            ]
            .concat(),
            400,
            "invalid_request",
            "a garbage actor_token",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![
                    ("actor_token", user_token.clone()),
                    ("actor_token_type", ACCESS_TOKEN.into()),
                ],
            ]
            .concat(),
            400,
            "invalid_request",
            "an actor token presented to it by someone else",
        ),
        (
            &orders,
            [subject(&user_token), vec![("actor_token", own.clone())]].concat(),
            400,
            "invalid_request",
            "an actor_token without its type",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![("scope", "orders:read admin".into())],
            ]
            .concat(),
            400,
            "invalid_scope",
            "a wider scope",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![("audience", "no-such-client".into())],
            ]
            .concat(),
            400,
            "invalid_target",
            "an unknown audience",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![("resource", "https://elsewhere.example/".into())],
            ]
            .concat(),
            400,
            "invalid_target",
            "a resource the subject is not for",
        ),
        (
            &orders,
            [
                subject(&user_token),
                vec![
                    ("audience", billing.id.clone()),
                    ("resource", "https://x.example/".into()),
                ],
            ]
            .concat(),
            400,
            "invalid_target",
            "both audience and resource",
        ),
    ];
    for (client, params, status, error, what) in cases {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = exchange(&api, client, &params).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (status, error),
            "{what}: {}",
            reply.body
        );
    }
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals record nothing"
    );

    // Retargeting to one registered client is not widening; the app may
    // exchange its own refresh token too.
    let retargeted = exchange(
        &api,
        &orders,
        &[
            ("subject_token", &user_token),
            ("subject_token_type", ACCESS_TOKEN),
            ("audience", &billing.id),
        ],
    )
    .await;
    assert_eq!(retargeted.status, 200, "{}", retargeted.body);
    let child = retargeted.field("access_token");
    assert!(api.is_active(&billing, &child).await);
    let lives = retargeted.body["expires_in"].as_i64().unwrap_or(i64::MAX);
    assert!(lives <= 300, "capped at the subject token's life: {lives}");
    let from_refresh = exchange(
        &api,
        &shop,
        &[
            ("subject_token", &refresh),
            ("subject_token_type", REFRESH_TOKEN),
            ("scope", "orders:read"),
        ],
    )
    .await;
    assert_eq!(from_refresh.status, 200, "{}", from_refresh.body);
    assert_eq!(from_refresh.field("scope"), "orders:read");

    // A revoked subject token is refused.
    assert_eq!(api.revoke(&shop, &user_token).await.status, 200);
    let revoked = exchange(
        &api,
        &orders,
        &[
            ("subject_token", &user_token),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(revoked.error(), "invalid_request", "{}", revoked.body);

    // Disabling the person's app ends what was exchanged from its grants
    // at once, before the policy records anything.
    assert!(api.is_active(&billing, &child).await);
    deployment.writ(&["client", "disable", &shop.id]).success();
    assert!(
        !api.is_active(&billing, &child).await,
        "the root's client disabled: its descendants stop at once"
    );
}
