//! `writ serve`: start with nothing configured, health, request ids in the
//! log, restart with state and keys kept, and the CLI beside a running
//! server with the projector seeing its commits.

use writ_store::statement::Statement;
use writ_store::RowExt;

use crate::harness::{eventually, Backend, DataDir, Deployment, Server};

writ_testing::on_both_backends!(
    a_restart_keeps_clients_users_and_keys,
    the_cli_works_while_serve_runs_and_the_projector_sees_its_commits,
);

#[tokio::test]
async fn serve_starts_with_no_configuration_under_writ_data() {
    let cwd = DataDir::new();
    let mut command = std::process::Command::new(crate::harness::writ_binary());
    command
        .current_dir(cwd.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start_command(command);
    let health = reqwest::get(server.url("/healthz"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.status(), 200);
    assert!(cwd.path().join("writ-data/writ.db").exists());
    assert!(
        cwd.path().join("writ-data/keys").exists(),
        "serve creates the key file on first start"
    );
    let started = server.log_lines().join("\n");
    assert!(
        !started.contains('\u{1b}'),
        "no terminal colours in a piped log: {started}"
    );
    assert!(
        started.contains("FULL"),
        "the SQLite synchronous mode is logged: {started}"
    );
}

#[tokio::test]
async fn health_and_readiness_answer_with_a_request_id_that_is_logged() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let client = reqwest::Client::new();
    let ready = client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready.status(), 200);
    let request_id = ready
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(request_id.len(), 36, "a UUID request id is returned");
    let line = eventually("the request's log line", || {
        let lines = server.log_lines();
        let id = request_id.clone();
        async move { lines.into_iter().find(|l| l.contains(&id)) }
    })
    .await;
    let parsed: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("JSON log line ({e}): {line}"));
    assert_eq!(parsed["span"]["request_id"], request_id.as_str());
    let kept = client
        .get(server.url("/healthz"))
        .header("x-request-id", "caller-chosen")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kept.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("caller-chosen")
    );
}

async fn a_restart_keeps_clients_users_and_keys(backend: Backend) {
    let data = Deployment::new(backend).await;
    let server = data.serve();
    let key_file = data.data.path().join("keys");
    let keys_before = std::fs::read(&key_file).unwrap_or_default();
    assert!(!keys_before.is_empty(), "a key file exists");
    let client = data
        .writ(&[
            "client", "create", "--name", "kept", "--scope", "api", "--json",
        ])
        .success()
        .json();
    let user = [
        "user",
        "create",
        "--username",
        "carol",
        "--email",
        "carol@example.com",
        "--password-stdin",
    ];
    data.writ_with_stdin(&user, "pw\n").success();
    server.stop();

    let server = data.serve();
    assert_eq!(
        std::fs::read(&key_file).unwrap_or_default(),
        keys_before,
        "the key file is reused"
    );
    let id = client["client_id"].as_str().unwrap_or_default();
    assert_eq!(
        data.writ(&["client", "show", id, "--json"])
            .success()
            .json()["client_name"],
        "kept"
    );
    let carol = data
        .writ(&["user", "show", "carol", "--json"])
        .success()
        .json();
    assert_eq!(
        carol["email"], "carol@example.com",
        "sealed fields still open with the kept keys"
    );
    server.stop();
}

async fn the_cli_works_while_serve_runs_and_the_projector_sees_its_commits(backend: Backend) {
    let data = Deployment::new(backend).await;
    let _server = data.serve();
    let client = data
        .writ(&[
            "client", "create", "--name", "beside", "--scope", "api", "--json",
        ])
        .success()
        .json();
    let id = client["client_id"].as_str().unwrap_or_default().to_owned();
    let store = data.store().await;
    let indexed = eventually("the projector to index the CLI's event", || {
        let query = Statement::new("SELECT event_type FROM audit_index WHERE client_id = $1")
            .text(id.clone());
        let db = store.db().clone();
        async move {
            db.fetch_optional(&query)
                .await
                .ok()
                .flatten()
                .and_then(|row| row.text("event_type"))
        }
    })
    .await;
    assert_eq!(indexed, "ClientRegistered");
}
