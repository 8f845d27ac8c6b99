//! The split deployment on one PostgreSQL: `writ command-api`, two `writ
//! query-api` processes and `writ projector`, as separate processes.
//! Read-your-writes holds across them; the projector runs active/standby.

use std::time::{Duration, Instant};

use crate::harness::{eventually, rounds, Backend, Deployment, Server};
use crate::oauth::{self, Api};
use crate::refresh::{password_app, user, PASSWORD};

const ISSUER: &str = "http://writ.test";

pub(crate) fn start(deployment: &Deployment, process: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        process,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--issuer",
        ISSUER,
    ];
    args.extend_from_slice(extra);
    Server::start_command(deployment.command(&args))
}

pub(crate) async fn metric(api: &Api, name: &str) -> Option<f64> {
    let text = api.text("/metrics").await?;
    text.lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn reads_at_any_query_api_see_every_write_of_the_command_api() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    // A disabled client cannot authenticate, so its tokens are watched by
    // the client its audience names (RFC 9068 §4).
    let observer = oauth::client(&deployment, &[]);
    let service = oauth::client(&deployment, &["--audience", &observer.id]);
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    // The last step sends 500 requests at once. A debug build sharing two
    // cores with the rest of the suite can take seconds over them; this
    // test is about read-your-writes, not shedding (`e2e overload`), so
    // the burst may queue.
    let queue = ["--queue-wait", "60s"];
    let command = start(
        &deployment,
        "command-api",
        &[
            "--public-query-url",
            "http://query.writ.test",
            queue[0],
            queue[1],
        ],
    );
    let (query_a, query_b) = (
        start(
            &deployment,
            "query-api",
            &[
                "--public-command-url",
                "http://command.writ.test",
                queue[0],
                queue[1],
            ],
        ),
        start(&deployment, "query-api", &queue),
    );
    let _projector = start(&deployment, "projector", &[]);
    let (writes, read_a, read_b) = (Api::new(&command), Api::new(&query_a), Api::new(&query_b));

    rounds(500, 8, |_| async {
        let token = writes.client_credentials(&service).await;
        assert!(
            read_a.is_active(&service, &token).await,
            "issued → active at query-api A"
        );
        assert_eq!(writes.revoke(&service, &token).await.status, 200);
        assert!(
            !read_b.is_active(&service, &token).await,
            "revoked → inactive at query-api B"
        );
    })
    .await;
    rounds(500, 8, |_| async {
        let login = writes.password(&app, "alice", PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.body);
        let (access, refresh) = (login.field("access_token"), login.field("refresh_token"));
        let rotated = writes.refresh(&app, &refresh).await;
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        assert_eq!(
            writes.refresh(&app, &refresh).await.error(),
            "invalid_grant",
            "reuse"
        );
        for api in [&read_a, &read_b] {
            assert!(
                !api.is_active(&app, &access).await,
                "the family is dead everywhere"
            );
            assert!(!api.is_active(&app, &rotated.field("access_token")).await);
        }
    })
    .await;
    let live: Vec<String> =
        futures::future::join_all((0..500).map(|_| writes.client_credentials(&service))).await;
    for token in &live {
        assert!(
            read_a.is_active(&observer, token).await,
            "the audience sees it active"
        );
    }
    deployment
        .writ(&["client", "disable", &service.id])
        .success();
    for token in &live {
        for api in [&read_a, &read_b] {
            assert!(
                !api.is_active(&observer, token).await,
                "disable → inactive everywhere"
            );
        }
    }

    // One issuer, with each API's public URL, whichever process answers.
    let discovery: serde_json::Value = read_a
        .http
        .get(read_a.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(discovery["issuer"], ISSUER);
    assert_eq!(
        discovery["token_endpoint"],
        "http://command.writ.test/token"
    );
    assert_eq!(
        discovery["introspection_endpoint"],
        format!("{ISSUER}/introspect")
    );
    let batches = metric(&writes, "writ_commit_batches_total")
        .await
        .unwrap_or(0.0);
    assert!(batches > 0.0, "the command API counts its batches");
    let text = writes
        .http
        .get(writes.url("/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(
        text.contains("writ_http_request_duration_seconds_count{method=\"POST\",route=\"/token\",status=\"200\"}"),
        "requests per endpoint: {text}"
    );
}

/// The backend holding the leader lock in this test's database.
pub(crate) async fn lock_holder(deployment: &Deployment) -> i64 {
    deployment
        .count(
            "SELECT coalesce(max(pid), 0) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid = 5722697 AND objid = 1414550095 AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await
}

async fn active_one(projectors: &[(&Server, Api)]) -> usize {
    eventually("exactly one active projector", || async {
        let mut active = Vec::new();
        for (index, (_, api)) in projectors.iter().enumerate() {
            if metric(api, "writ_projector_active").await? == 1.0 {
                active.push(index);
            }
        }
        (active.len() == 1).then(|| active[0])
    })
    .await
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_standby_projector_takes_over_within_five_seconds() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let service = oauth::client(&deployment, &[]);
    let command = start(&deployment, "command-api", &[]);
    let writes = Api::new(&command);
    let first = start(&deployment, "projector", &[]);
    let second = start(&deployment, "projector", &[]);
    let projectors = [(&first, Api::new(&first)), (&second, Api::new(&second))];
    let active = active_one(&projectors).await;
    let sampler = checkpoint_sampler(deployment.database_url.clone().unwrap_or_default());

    let checkpoint = || {
        deployment.count("SELECT coalesce(max(position), 0) FROM projector_checkpoints WHERE projection = 'audit_index'")
    };
    let load = async {
        for _ in 0..100 {
            writes.client_credentials(&service).await;
        }
    };
    load.await;
    let before = checkpoint().await;
    let [(a, _), (b, _)] = projectors;
    let (dying, standby) = if active == 0 { (a, b) } else { (b, a) };
    let standby_api = Api::new(standby);
    let pid = dying.pid();
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .ok();
    eventually("the standby to take over", || async {
        (metric(&standby_api, "writ_projector_active").await? == 1.0).then_some(())
    })
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        killed.elapsed()
    );
    for _ in 0..50 {
        writes.client_credentials(&service).await;
    }
    let events = deployment.event_count().await;
    eventually("the new leader to catch up", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == events).then_some(())
    })
    .await;
    assert!(
        checkpoint().await >= before,
        "the checkpoint never moves backwards"
    );

    // A third process stands by; cutting the leader's lock session hands over.
    let third = start(&deployment, "projector", &[]);
    let third_api = Api::new(&third);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        metric(&third_api, "writ_projector_active").await,
        Some(0.0),
        "a standby"
    );
    let holder = lock_holder(&deployment).await;
    assert!(holder > 0, "someone holds the lock");
    let cut = Instant::now();
    deployment
        .count(&format!("SELECT pg_terminate_backend({holder})::int"))
        .await;
    eventually("a projector to hold the lock again", || async {
        let next = lock_holder(&deployment).await;
        (next > 0 && next != holder).then_some(())
    })
    .await;
    assert!(
        cut.elapsed() < Duration::from_secs(5),
        "took {:?}",
        cut.elapsed()
    );
    for _ in 0..50 {
        writes.client_credentials(&service).await;
    }
    let events = deployment.event_count().await;
    eventually("the log to be projected exactly once", || async {
        (deployment.count("SELECT count(*) FROM audit_index").await == events).then_some(())
    })
    .await;
    assert_eq!(
        deployment
            .count("SELECT count(DISTINCT position) FROM audit_index")
            .await,
        events,
        "no event applied twice"
    );
    let samples = sampler.stop().await;
    assert!(
        samples > 10,
        "the checkpoint was watched throughout ({samples} samples)"
    );
}

/// Reads the audit checkpoint every 20 ms until stopped and fails the test
/// if it ever moves backwards.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

fn checkpoint_sampler(url: String) -> Sampler {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let db = writ_store::Db::connect_postgres(&url, 1)
            .await
            .map(writ_store::Db::Postgres)
            .unwrap_or_else(|e| panic!("{e}"));
        let query = writ_store::statement::Statement::new(
            "SELECT coalesce(max(position), 0) FROM projector_checkpoints WHERE projection = 'audit_index'",
        );
        let (mut highest, mut samples) = (0, 0);
        while !stopped.load(Ordering::Relaxed) {
            if let Ok(position) = db.scalar_i64(&query).await {
                assert!(
                    position >= highest,
                    "the checkpoint moved back from {highest} to {position}"
                );
                highest = position;
                samples += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples
    });
    Sampler { stop, task }
}

impl Sampler {
    async fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task
            .await
            .unwrap_or_else(|e| panic!("the sampler failed: {e}"))
    }
}
