//! Refresh tokens and the legacy password grant: rotation, reuse revoking
//! the whole family, client binding, scope, lifetimes, concurrency, and the
//! account-level policies (password change, disable) seen through
//! introspection and the log.

use std::time::Instant;

use serde_json::Value;

use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api, Creds};

writ_testing::on_both_backends!(
    five_hundred_reused_refresh_tokens_each_revoke_their_family,
    refresh_tokens_are_bound_scoped_and_expire_idle_and_absolute,
    concurrent_refreshes_of_one_token_never_leave_two_live_families,
    the_password_grant_is_opt_in_throttled_and_records_outcomes,
    a_password_change_or_disable_kills_the_accounts_tokens,
);

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) fn password_app(deployment: &Deployment, extra: &[&str]) -> Creds {
    let mut args = vec![
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid profile email",
    ];
    args.extend_from_slice(extra);
    oauth::client(deployment, &args)
}

pub(crate) fn user(deployment: &Deployment, username: &str) {
    deployment
        .writ_with_stdin(
            &[
                "user",
                "create",
                "--username",
                username,
                "--password-stdin",
                "--email",
                "alice@example.com",
                "--name",
                "Alice Example",
            ],
            &format!("{PASSWORD}\n"),
        )
        .success();
}

async fn password_tokens(api: &Api, app: &Creds, username: &str) -> (String, String) {
    let reply = api.password(app, username, PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    (reply.field("access_token"), reply.field("refresh_token"))
}

async fn five_hundred_reused_refresh_tokens_each_revoke_their_family(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    // Eight clients at once, as an app fleet would; each round its own family.
    crate::harness::rounds(500, 8, |round| {
        let (api, app) = (&api, &app);
        async move {
            let (first_access, first_refresh) = password_tokens(api, app, "alice").await;
            let won = api.refresh(app, &first_refresh).await;
            assert_eq!(won.status, 200, "round {round}: {}", won.body);
            let (second_access, second_refresh) =
                (won.field("access_token"), won.field("refresh_token"));
            assert!(api.is_active(app, &second_refresh).await, "round {round}");
            assert!(
                !api.is_active(app, &first_refresh).await,
                "R25: the rotated token is dead"
            );
            let reused = api.refresh(app, &first_refresh).await;
            assert_eq!(
                reused.error(),
                "invalid_grant",
                "round {round}: {}",
                reused.body
            );
            // R26: the whole family dies, the tokens of the request that won included.
            for token in [&first_access, &second_access, &second_refresh] {
                assert!(!api.is_active(app, token).await, "round {round}");
            }
            let after = api.refresh(app, &second_refresh).await;
            assert_eq!(after.error(), "invalid_grant", "round {round}");
        }
    })
    .await;
    let reuse_events = deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'RefreshTokenReuseDetected'")
        .await;
    assert_eq!(reuse_events, 500);
}

async fn refresh_tokens_are_bound_scoped_and_expire_idle_and_absolute(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = password_app(&deployment, &[]);
    let other = app_with_name(&deployment);
    let short = password_app(&deployment, &["--refresh-token-ttl", "2s"]);
    user(&deployment, "alice");
    let server = deployment.serve_with(&["--refresh-token-idle-ttl", "1s"]);
    let api = Api::new(&server);

    let (_, refresh) = password_tokens(&api, &app, "alice").await;
    let before = deployment.event_count().await;
    let stolen = api.refresh(&other, &refresh).await;
    assert_eq!(stolen.error(), "invalid_grant", "R23: bound to its client");
    // L5: another client's refresh token reads exactly like a made-up one.
    let made_up = api.refresh(&other, "not-a-refresh-token").await;
    assert_eq!(made_up.error(), "invalid_grant");
    let generic = made_up.field("error_description");
    assert_eq!(stolen.field("error_description"), generic, "L5");
    let anonymous = api
        .post(
            "/token",
            None,
            oauth::form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &app.id),
            ]),
        )
        .await;
    assert_eq!(
        anonymous.status, 401,
        "R24: a confidential client authenticates"
    );
    let wider = api
        .token(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("scope", "openid admin"),
            ],
        )
        .await;
    assert_eq!(wider.error(), "invalid_scope", "R28");
    assert_eq!(
        deployment.event_count().await,
        before,
        "refusals record nothing"
    );
    let narrower = api
        .token(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("scope", "openid"),
            ],
        )
        .await;
    assert_eq!(narrower.status, 200, "{}", narrower.body);
    assert_eq!(narrower.field("scope"), "openid");
    assert_eq!(
        api.introspect(&app, &narrower.field("access_token")).await["scope"],
        "openid"
    );

    // R30, idle: unused for longer than the idle lifetime, it is refused.
    let idle = narrower.field("refresh_token");
    eventually("the idle lifetime to pass", || async {
        (!api.is_active(&app, &idle).await).then_some(())
    })
    .await;
    let idled = api.refresh(&app, &idle).await;
    assert_eq!(idled.error(), "invalid_grant");
    assert_eq!(idled.field("error_description"), generic, "L5: idle");

    // R30, absolute: used often enough never to idle out, the family still
    // ends with its lifetime (2 s), not before.
    let started = Instant::now();
    let (_, mut current) = password_tokens(&api, &short, "alice").await;
    let mut uses = 0;
    loop {
        let reply = api.refresh(&short, &current).await;
        if reply.status != 200 {
            assert_eq!(reply.error(), "invalid_grant");
            break;
        }
        uses += 1;
        current = reply.field("refresh_token");
        assert!(started.elapsed().as_secs() < 10, "the family never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed().as_millis() >= 1_900,
        "expired early after {uses} uses"
    );
    assert!(uses >= 3, "only {uses} refreshes succeeded");
}

fn app_with_name(deployment: &Deployment) -> Creds {
    password_app(deployment, &["--name", "another app"])
}

async fn concurrent_refreshes_of_one_token_never_leave_two_live_families(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    let server = deployment.serve();
    let api = Api::new(&server);
    for round in 0..5 {
        let (_, refresh) = password_tokens(&api, &app, "alice").await;
        let replies = futures::future::join_all((0..10).map(|_| api.refresh(&app, &refresh))).await;
        let winners: Vec<&oauth::Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert!(
            winners.len() <= 1,
            "round {round}: {} winners",
            winners.len()
        );
        for reply in &replies {
            assert!(
                reply.status == 200 || reply.error() == "invalid_grant",
                "round {round}: {} {}",
                reply.status,
                reply.body
            );
        }
        let mut live = 0;
        for winner in winners {
            live += usize::from(api.is_active(&app, &winner.field("refresh_token")).await);
        }
        assert!(live <= 1, "R29");
    }
}

async fn the_password_grant_is_opt_in_throttled_and_records_outcomes(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = password_app(&deployment, &[]);
    let plain = oauth::client(&deployment, &["--scope", "openid"]);
    user(&deployment, "alice");
    let server =
        deployment.serve_with(&["--auth-failure-limit", "3", "--auth-failure-window", "1h"]);
    let api = Api::new(&server);
    let before = deployment.event_count().await;
    let not_opted_in = api.password(&plain, "alice", PASSWORD).await;
    assert_eq!(not_opted_in.error(), "unauthorized_client", "R47");
    let unknown = api.password(&app, "nobody", PASSWORD).await;
    assert_eq!(unknown.error(), "invalid_grant");
    assert_eq!(
        deployment.event_count().await,
        before,
        "unknown accounts grow no log"
    );

    let (access, _) = password_tokens(&api, &app, "alice").await;
    let info = api
        .http
        .get(api.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.status(), 200);
    let claims: Value = info.json().await.unwrap_or_default();
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["email"], "alice@example.com");
    let in_query = api
        .http
        .get(api.url(&format!("/userinfo?access_token={access}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_query.status(), 401, "R39: never from the query");
    let posted = api
        .post("/userinfo", None, oauth::form(&[("access_token", &access)]))
        .await;
    assert_eq!(posted.status, 200, "RFC 6750 §2.2: {}", posted.body);
    assert_eq!(posted.body["sub"], claims["sub"]);
    let service = oauth::client(&deployment, &["--scope", "openid"]);
    let no_user = api.client_credentials(&service).await;
    let refused = api
        .http
        .get(api.url("/userinfo"))
        .bearer_auth(&no_user)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        refused.status(),
        403,
        "a client credentials token has no user"
    );

    let before = deployment.event_count().await;
    for attempt in 0..3 {
        let wrong = api.password(&app, "alice", "wrong password").await;
        assert_eq!(wrong.error(), "invalid_grant", "attempt {attempt}");
    }
    let failures = deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'LoginFailed'")
        .await;
    assert_eq!(failures, 3, "each failure is recorded");
    assert_eq!(deployment.event_count().await, before + 3);
    // R73: past the limit a wrong password is answered 429, for a name
    // that exists and one that does not alike; the right one still works.
    let throttled = api.password(&app, "alice", "wrong password").await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert_eq!(throttled.error(), "invalid_request");
    assert!(throttled.header("retry-after").is_some());
    assert_eq!(
        deployment.event_count().await,
        before + 4,
        "the failure is still recorded"
    );
    for attempt in 0..3 {
        let wrong = api.password(&app, "nobody-else", "wrong password").await;
        assert_eq!(wrong.status, 400, "attempt {attempt}: {}", wrong.body);
    }
    let unknown = api.password(&app, "nobody-else", "wrong password").await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (throttled.status, throttled.error()),
        "an unknown name is throttled exactly like a known one"
    );
    let right = api.password(&app, "alice", PASSWORD).await;
    assert_eq!(
        right.status, 200,
        "strangers' failures never refuse the right password: {}",
        right.body
    );
}

async fn a_password_change_or_disable_kills_the_accounts_tokens(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    user(&deployment, "bob");
    let server = deployment.serve();
    let api = Api::new(&server);
    let (first, mut refresh) = password_tokens(&api, &app, "alice").await;
    let mut tokens = vec![first];
    for _ in 1..500 {
        let reply = api.refresh(&app, &refresh).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        tokens.push(reply.field("access_token"));
        refresh = reply.field("refresh_token");
    }
    let (bobs, _) = password_tokens(&api, &app, "bob").await;
    deployment
        .writ_with_stdin(
            &["user", "set-password", "alice", "--password-stdin"],
            "a brand new password\n",
        )
        .success();
    for token in &tokens {
        assert!(
            !api.is_active(&app, token).await,
            "R31: the password change ends it"
        );
    }
    assert_eq!(api.refresh(&app, &refresh).await.error(), "invalid_grant");
    assert!(
        api.is_active(&app, &bobs).await,
        "other accounts are untouched"
    );
    eventually("the policy to revoke alice's grant in the log", || async {
        let revoked = deployment.count_revocations("password_changed").await;
        (revoked == 1).then_some(())
    })
    .await;
    let relogin = api.password(&app, "alice", "a brand new password").await;
    assert_eq!(relogin.status, 200, "a grant after the change is live");
    let fresh = relogin.field("access_token");
    assert!(api.is_active(&app, &fresh).await);

    deployment.writ(&["user", "disable", "bob"]).success();
    assert!(
        !api.is_active(&app, &bobs).await,
        "disable has exited: inactive"
    );
    assert!(api.is_active(&app, &fresh).await);
}
