//! The resource-server SDK's two sources that need neither a broker nor a
//! call to Writ per request: the token status list, and a Shared Signals
//! stream (pushed to the SDK's axum endpoint, or polled). Each denies a
//! revoked token, and only it, without introspection.

use std::time::Duration;

use reqwest::StatusCode;
use writ_resource_server::ssf::{follow_poll, push_router, SsfClient, SsfReceiver};
use writ_resource_server::{Config, ResourceServer};

use crate::harness::{eventually, Backend, Deployment, Server};
use crate::oauth::{self, Api, Creds};
use crate::refresh::{password_app, user, PASSWORD};
use crate::shared_signals::{receiver_client, unverified};

writ_testing::on_both_backends!(
    the_sdk_denies_a_revoked_token_by_its_status_list,
    the_sdk_denies_a_revoked_grant_signalled_by_push,
    the_sdk_denies_a_revoked_grant_signalled_by_poll,
);

/// A resource server for `audience` that trusts the issuer of `token`.
fn resource_server(token: &str, audience: &str, setup: impl FnOnce(&mut Config)) -> ResourceServer {
    let issuer = unverified(token)["iss"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut config = Config::new(issuer, audience);
    setup(&mut config);
    ResourceServer::new(config)
}

async fn denied(server: &ResourceServer, token: &str) -> bool {
    match server.authenticate(token).await {
        Ok(_) => false,
        Err(refusal) => {
            assert_eq!(refusal.error(), Some("invalid_token"), "{refusal:?}");
            true
        }
    }
}

async fn the_sdk_denies_a_revoked_token_by_its_status_list(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let api_identity = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let service = oauth::client(&deployment, &["--audience", &api_identity.id]);
    let writ = deployment.serve();
    let api = Api::new(&writ);
    let revoked = api.client_credentials(&service).await;
    let kept = api.client_credentials(&service).await;
    let server = resource_server(&revoked, &api_identity.id, |config| {
        config.status_lists = true;
        // Writ's lists say five minutes; this API looks again each second.
        config.status_list_max_ttl = Duration::from_secs(1);
    });
    assert!(!denied(&server, &revoked).await);
    assert!(!denied(&server, &kept).await);

    assert_eq!(api.revoke(&service, &revoked).await.status, StatusCode::OK);
    eventually("the status list to deny the revoked token", || async {
        denied(&server, &revoked).await.then_some(())
    })
    .await;
    assert!(!denied(&server, &kept).await, "its neighbour stays valid");
    assert_eq!(server.introspection_calls(), 0);
    assert_eq!(server.denied_entries(), 0, "no feed: the list decided");
}

/// A person's grant with a refresh token, for a token the API accepts.
async fn person(
    deployment: &Deployment,
    api: &Api,
    app: &Creds,
    username: &str,
) -> (String, String) {
    user(deployment, username);
    let login = api.password(app, username, PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    (login.field("access_token"), login.field("refresh_token"))
}

struct Setup {
    deployment: Deployment,
    writ: Server,
    api: Api,
    app: Creds,
    receiver: Creds,
    api_identity: Creds,
}

async fn setup(backend: Backend) -> Setup {
    let deployment = Deployment::with_keys(backend).await;
    let api_identity = oauth::client(&deployment, &["--grant-type", "client_credentials"]);
    let app = password_app(&deployment, &["--audience", &api_identity.id]);
    let receiver = receiver_client(&deployment);
    let writ = deployment.serve();
    let api = Api::new(&writ);
    Setup {
        deployment,
        writ,
        api,
        app,
        receiver,
        api_identity,
    }
}

/// Revokes alice's grant by its refresh token (RFC 7009 §2.1), which Writ
/// signals as a CAEP `session-revoked`; bob's grant stays.
async fn revoke_one_of_two(setup: &Setup, server: &ResourceServer) {
    let (alice, alice_refresh) = person(&setup.deployment, &setup.api, &setup.app, "alice").await;
    let (bob, _) = person(&setup.deployment, &setup.api, &setup.app, "bob").await;
    assert!(!denied(server, &alice).await);
    let revoked = setup.api.revoke(&setup.app, &alice_refresh).await;
    assert_eq!(revoked.status, StatusCode::OK);
    eventually("the signal to deny alice's token", || async {
        denied(server, &alice).await.then_some(())
    })
    .await;
    assert!(!denied(server, &bob).await, "bob's grant was not revoked");
    assert_eq!(server.introspection_calls(), 0);
}

async fn the_sdk_denies_a_revoked_grant_signalled_by_push(backend: Backend) {
    let setup = setup(backend).await;
    let probe = setup.api.client_credentials(&setup.api_identity).await;
    let server = resource_server(&probe, &setup.api_identity.id, |_| {});
    let receiver = SsfReceiver::new(server.clone(), &setup.receiver.id);
    let authorization = "Bearer a-secret-writ-sends-with-every-push";
    let endpoint = push_router("/ssf/events", receiver, Some(authorization.to_owned()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, endpoint).await });
    let push_url = format!("http://{address}/ssf/events");

    // The endpoint refuses what Writ would never send.
    let http = reqwest::Client::new();
    let unauthenticated = http
        .post(&push_url)
        .header("content-type", "application/secevent+jwt")
        .body("x.y.z")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let forged = http
        .post(&push_url)
        .header("authorization", authorization)
        .header("content-type", "application/secevent+jwt")
        .body(probe.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        forged.status(),
        StatusCode::BAD_REQUEST,
        "an access token is no SET"
    );

    let client = SsfClient::new(
        setup.writ.url(""),
        &setup.receiver.id,
        &setup.receiver.secret,
    );
    client
        .create_stream(Some((&push_url, authorization)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    revoke_one_of_two(&setup, &server).await;
}

async fn the_sdk_denies_a_revoked_grant_signalled_by_poll(backend: Backend) {
    let setup = setup(backend).await;
    let probe = setup.api.client_credentials(&setup.api_identity).await;
    let server = resource_server(&probe, &setup.api_identity.id, |_| {});
    let client = SsfClient::new(
        setup.writ.url(""),
        &setup.receiver.id,
        &setup.receiver.secret,
    );
    let stream_id = client
        .create_stream(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let receiver = SsfReceiver::new(server.clone(), &setup.receiver.id);
    let poller = tokio::spawn(follow_poll(receiver, client, stream_id));
    tokio::time::timeout(Duration::from_secs(30), server.caught_up())
        .await
        .unwrap_or_else(|_| panic!("the poll never caught up"));
    revoke_one_of_two(&setup, &server).await;
    // Its kept-alive connection would hold Writ's graceful shutdown open.
    poller.abort();
}
