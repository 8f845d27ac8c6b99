//! A Kafka-protocol broker of a test's or the soak's own, on durable
//! storage (tansu's SQLite engine, in a temporary directory), which can be
//! stopped or crashed and started again on the same port and the same data.
//! `WRIT_TEST_TANSU` names the binary (`scripts/test` builds it with libsql).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const STORAGE: &str = "sqlite://tansu.db";

pub struct DurableBroker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}

/// Starts tansu and waits for it to say it is ready.
fn spawn_tansu(port: u16, dir: &Path) -> Result<Child, String> {
    let tansu = std::env::var("WRIT_TEST_TANSU").unwrap_or_else(|_| "tansu".to_owned());
    let address = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(tansu)
        .arg("broker")
        .args(["--listener-url", &address])
        .args(["--advertised-listener-url", &address])
        .args(["--storage-engine", STORAGE])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("tansu: {e}"))?;
    let stdout = child.stdout.take().ok_or("tansu: no stdout")?;
    let (ready, readied) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("ready in") {
                let _ = ready.send(());
            }
        }
    });
    if readied.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "tansu did not start on {port} with {STORAGE} (is WRIT_TEST_TANSU built with libsql?)"
        ));
    }
    Ok(child)
}

impl DurableBroker {
    pub fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let child = spawn_tansu(port, dir.path())?;
        Ok(Self {
            child: Some(child),
            port,
            dir,
        })
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as in a crash: the port refuses connections until
    /// [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new broker on the same port and data.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        self.child = Some(spawn_tansu(self.port, self.dir.path())?);
        Ok(())
    }
}

impl Drop for DurableBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
