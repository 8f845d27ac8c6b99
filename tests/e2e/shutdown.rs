//! Graceful shutdown: SIGTERM under load closes the listener, lets every
//! request already taken finish and answer, and commits what they wrote.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::{self, Api};
use crate::split::start;

const ISSUED: &str = "SELECT count(*) FROM events WHERE event_type = 'AccessTokenIssued'";

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn sigterm_under_load_answers_every_request_whose_token_it_committed() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let service = Arc::new(oauth::client(&deployment, &[]));
    let command = start(&deployment, "command-api", &[]);
    let api = Arc::new(Api::new(&command));
    let before = deployment.count(ISSUED).await;
    let delivered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (api, service, delivered) = (api.clone(), service.clone(), delivered.clone());
            tokio::spawn(async move {
                while api.try_client_credentials(&service).await.is_some() {
                    delivered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    eventually("load to build up", || async {
        (delivered.load(Ordering::SeqCst) >= 200).then_some(())
    })
    .await;
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &command.pid().to_string()])
        .status()
        .map(|status| status.success());
    assert_eq!(terminated.ok(), Some(true));
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(30), worker)
            .await
            .unwrap_or_else(|_| panic!("a request hung after SIGTERM"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let log = command.log_lines();
    command.stop();
    // A token committed and never answered would make these differ; so
    // would an answered one whose batch was cut off.
    let committed = deployment.count(ISSUED).await - before;
    assert_eq!(
        committed,
        delivered.load(Ordering::SeqCst) as i64,
        "every issued token reached its caller and every delivered one is in the log"
    );
    assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
}
