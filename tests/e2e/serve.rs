//! `writ serve`: start with nothing configured, health, request ids in the
//! log, restart with state and keys kept, and the CLI beside a running
//! server with the projector seeing its commits.

use crate::harness::{eventually, DataDir, Server};

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

#[tokio::test]
async fn a_restart_keeps_clients_users_and_keys() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let keys_before = std::fs::read(data.path().join("keys")).unwrap_or_default();
    let client = data
        .writ(&[
            "client", "create", "--name", "kept", "--scope", "api", "--json",
        ])
        .success()
        .json();
    data.writ_with_stdin(
        &[
            "user",
            "create",
            "--username",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ],
        "pw\n",
    )
    .success();
    server.stop();

    let server = Server::start(&data);
    assert_eq!(
        std::fs::read(data.path().join("keys")).unwrap_or_default(),
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

#[tokio::test]
async fn the_cli_works_while_serve_runs_and_the_projector_sees_its_commits() {
    let data = DataDir::new();
    let _server = Server::start(&data);
    let client = data
        .writ(&[
            "client", "create", "--name", "beside", "--scope", "api", "--json",
        ])
        .success()
        .json();
    let id = client["client_id"].as_str().unwrap_or_default().to_owned();
    let pool = data.pool().await;
    let indexed: String = eventually("the projector to index the CLI's event", || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            sqlx::query_scalar("SELECT event_type FROM audit_index WHERE client_id = ?")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert_eq!(indexed, "ClientRegistered");
}
