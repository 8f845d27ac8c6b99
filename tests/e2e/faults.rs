//! Faults under the token service: the database going away (F1, R53) and
//! the server killed at random moments under load (R62, F3).

use std::collections::HashSet;
use std::time::Duration;

use rand::Rng;

use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api, Creds};

writ_testing::on_both_backends!(every_2xx_survives_a_sigkill_under_token_and_revoke_load);

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn with_postgres_down_tokens_and_revocations_answer_503_and_nothing_is_issued() {
    let (cluster, deployment) = Deployment::on_private_cluster("f1");
    let service = oauth::client(&deployment, &[]);
    let web = crate::browser::web_client(&deployment, &[]);
    let server = deployment.serve();
    let api = Api::new(&server);
    let issued = api.client_credentials(&service).await;
    let events_before = deployment.event_count().await;

    cluster.stop().unwrap_or_else(|e| panic!("{e}"));
    let token = api
        .token(&service, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status, 503, "F1: {}", token.body);
    assert_eq!(token.error(), "temporarily_unavailable");
    let revoke = api.revoke(&service, &issued).await;
    assert_eq!(revoke.status, 503, "R53: never 200 without a commit");
    assert_eq!(api.status("/readyz").await, 503, "readiness fails");
    assert_eq!(api.status("/healthz").await, 200, "liveness holds");
    let authorize = crate::browser::Browser::new(&server)
        .authorize(&crate::browser::oidc_params(&web.id, "s"))
        .await;
    authorize.assert_error_page("F1: authorize shows an error page, never redirects");

    cluster.start().unwrap_or_else(|e| panic!("{e}"));
    eventually("the server to reach PostgreSQL again", || async {
        let reply = api
            .token(&service, &[("grant_type", "client_credentials")])
            .await;
        (reply.status == 200).then_some(())
    })
    .await;
    assert_eq!(
        deployment.event_count().await,
        events_before + 2,
        "nothing was issued while the database was down; one grant after"
    );
    assert!(
        api.is_active(&service, &issued).await,
        "the failed revocation changed nothing"
    );
    assert_eq!(api.revoke(&service, &issued).await.status, 200);
    assert!(!api.is_active(&service, &issued).await);
}

/// What the load generator saw answered with 2xx.
#[derive(Default)]
struct Seen {
    issued: Vec<String>,
    revoked: HashSet<String>,
    /// A revocation sent when the server died: either outcome is right.
    in_doubt: Option<String>,
}

async fn load_until_killed(api: &Api, creds: &Creds) -> Seen {
    let mut seen = Seen::default();
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(2), api.try_client_credentials(creds));
        let Ok(Some(token)) = reply.await else {
            return seen;
        };
        seen.issued.push(token.clone());
        if seen.issued.len() % 2 == 0 {
            match tokio::time::timeout(Duration::from_secs(2), api.try_revoke(creds, &token)).await
            {
                Ok(Some(200)) => {
                    seen.revoked.insert(token);
                }
                _ => {
                    seen.in_doubt = Some(token);
                    return seen;
                }
            }
        }
    }
}

async fn every_2xx_survives_a_sigkill_under_token_and_revoke_load(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let creds = oauth::client(&deployment, &[]);
    let mut checked = 0;
    let mut delivered = 0;
    for round in 0..50 {
        let server = deployment.serve();
        let api = Api::new(&server);
        let workers = (0..4).map(|_| load_until_killed(&api, &creds));
        let delay = Duration::from_millis(rand::thread_rng().gen_range(20..250));
        let killer = async {
            tokio::time::sleep(delay).await;
            server.kill();
        };
        let (seen, ()) = tokio::join!(futures::future::join_all(workers), killer);
        let restarted = deployment.serve();
        let api = Api::new(&restarted);
        for worker in seen {
            delivered += worker.issued.len();
            for token in &worker.issued {
                if worker.in_doubt.as_ref() == Some(token) {
                    continue;
                }
                let expected = !worker.revoked.contains(token);
                let answer = api.introspect(&creds, token).await;
                assert_eq!(answer["active"], expected, "round {round}: R62 {answer}");
                checked += 1;
            }
        }
        restarted.stop();
    }
    assert!(checked > 100, "the load produced only {checked} answers");
    let committed = deployment
        .count("SELECT count(*) FROM events WHERE event_type = 'AccessTokenIssued'")
        .await;
    assert!(
        committed >= delivered as i64,
        "F3: {delivered} tokens delivered, only {committed} issuance events"
    );
}
