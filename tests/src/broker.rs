//! A Kafka-protocol broker of a test's, a benchmark's or the soak's own:
//! tansu on durable storage (its SQLite engine, in a temporary directory),
//! which can be crashed and started again on the same port and the same
//! data, or in memory where only speed matters.
//! `WRIT_TEST_TANSU` names the binary (`scripts/test` builds it with libsql).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::writ_process::free_port;

const DURABLE: &str = "sqlite://tansu.db";
const IN_MEMORY: &str = "memory://tansu/";

pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: &'static str,
    dir: tempfile::TempDir,
}

/// Starts tansu and waits for it to say it is ready.
fn spawn_tansu(port: u16, storage: &str, dir: &Path) -> Result<Child, String> {
    let tansu = std::env::var("WRIT_TEST_TANSU").unwrap_or_else(|_| "tansu".to_owned());
    let address = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(tansu)
        .arg("broker")
        .args(["--listener-url", &address])
        .args(["--advertised-listener-url", &address])
        .args(["--storage-engine", storage])
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
        let hint = if storage == DURABLE {
            " (is WRIT_TEST_TANSU built with libsql?)"
        } else {
            ""
        };
        return Err(format!(
            "tansu did not start on {port} with {storage}{hint}"
        ));
    }
    Ok(child)
}

impl Broker {
    /// On disk: what it acknowledged survives [`Self::stop`].
    pub fn durable() -> Result<Self, String> {
        Self::start(DURABLE)
    }

    /// In memory: what it held is gone after [`Self::stop`].
    pub fn in_memory() -> Result<Self, String> {
        Self::start(IN_MEMORY)
    }

    fn start(storage: &'static str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let child = spawn_tansu(port, storage, dir.path())?;
        Ok(Self {
            child: Some(child),
            port,
            storage,
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

    /// A new broker on the same port and storage.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        self.child = Some(spawn_tansu(self.port, self.storage, self.dir.path())?);
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
