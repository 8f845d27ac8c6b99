//! The three-service demo of `examples/three-service`, as its README runs
//! it: `start.sh` brings up Writ split on PostgreSQL and Kafka, the time
//! API and the web app; `walkthrough.sh` is the README's curl walk-through,
//! each step checked. Both scripts run unchanged, on the binaries under
//! test.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::writ_binary;
use crate::revocation_stream::kafka;

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The demo's process group, stopped with SIGTERM (start.sh stops its
/// five services on it) when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and Kafka: `bash scripts/test` starts them and runs this"]
async fn the_demo_walkthrough_runs_as_its_readme_says() {
    let database = writ_testing::fresh_postgres_database()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kafka = kafka();
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/three-service");
    let bin = writ_binary()
        .parent()
        .unwrap_or_else(|| panic!("the writ binary has no directory"));
    let ports = [
        ("COMMAND_PORT", free_port()),
        ("QUERY_PORT", free_port()),
        ("PROJECTOR_PORT", free_port()),
        ("TIME_API_PORT", free_port()),
        ("WEB_APP_PORT", free_port()),
    ];

    let mut start = Command::new("bash");
    start
        .arg(scripts.join("start.sh"))
        .envs(ports.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DEMO_BIN", bin)
        .env("DEMO_DATA", data.path())
        .env("WRIT_DATABASE_URL", &database)
        .env("WRIT_KAFKA_BROKERS", &kafka.brokers)
        .env("WRIT_KAFKA_TOPIC", &kafka.topic)
        .env_remove("WRIT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = start.spawn().unwrap_or_else(|e| panic!("{e}"));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let demo = Demo(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout
            .map(BufReader::new)
            .into_iter()
            .flat_map(|r| r.lines())
        {
            let Ok(line) = line else { break };
            if line == "demo ready" {
                let _ = ready_tx.send(());
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in stderr
            .map(BufReader::new)
            .into_iter()
            .flat_map(|r| r.lines())
        {
            let Ok(line) = line else { break };
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    if ready_rx.recv_timeout(Duration::from_secs(120)).is_err() {
        drop(demo);
        panic!(
            "start.sh did not report the demo ready; its errors:\n{}",
            errors.join().unwrap_or_default()
        );
    }

    let walk = Command::new("bash")
        .arg(scripts.join("walkthrough.sh"))
        .envs(ports.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let (out, err) = (
        String::from_utf8_lossy(&walk.stdout),
        String::from_utf8_lossy(&walk.stderr),
    );
    assert!(
        walk.status.success() && out.contains("walk-through complete"),
        "the walk-through failed:\n{out}\n{err}"
    );
    drop(demo);
}
