//! A Kafka-protocol broker of a test's own that the test can cut off: tansu
//! advertises a port on which this process relays to it, and cutting the
//! relay drops every connection and refuses new ones, as a broker that is
//! down does, while the broker keeps what it stored (as one on durable
//! storage would).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct SeverableBroker {
    child: Child,
    relay_port: u16,
    up: watch::Sender<bool>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts tansu and waits for it to say it is ready.
fn spawn_tansu(listen: u16, advertise: u16, storage: &str, dir: Option<&Path>) -> Child {
    let tansu = std::env::var("WRIT_TEST_TANSU").unwrap_or_else(|_| "tansu".to_owned());
    let mut command = Command::new(tansu);
    command
        .arg("broker")
        .args(["--listener-url", &format!("tcp://127.0.0.1:{listen}")])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertise}"),
        ])
        .args(["--storage-engine", storage])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("tansu: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
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
        panic!("tansu did not start on {listen} with {storage}");
    }
    child
}

impl SeverableBroker {
    pub async fn start() -> Self {
        let (broker_port, relay_port) = (free_port(), free_port());
        let child = spawn_tansu(broker_port, relay_port, "memory://tansu/", None);
        let (up, _) = watch::channel(true);
        // On a thread of its own: tests block their runtime's thread while
        // a `writ` process starts.
        let relayed = up.subscribe();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(relay(relay_port, broker_port, relayed));
        });
        Self {
            child,
            relay_port,
            up,
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.relay_port)
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for SeverableBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A broker of a test's own on durable storage (tansu's SQLite engine, in a
/// temporary directory), which the test can crash and start again on the
/// same port and the same data.
pub struct DurableBroker {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

const DURABLE_STORAGE: &str = "sqlite://tansu.db";

impl DurableBroker {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let child = spawn_tansu(port, port, DURABLE_STORAGE, Some(dir.path()));
        Self { child, port, dir }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as in a crash; `down` later a new broker on the same data.
    pub fn crash_and_restart_after(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = spawn_tansu(self.port, self.port, DURABLE_STORAGE, Some(self.dir.path()));
    }
}

impl Drop for DurableBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Relays `from` to `to` while `up`; when it goes down, closes the port
/// and every relayed connection, and opens the port again when it is back.
async fn relay(from: u16, to: u16, mut up: watch::Receiver<bool>) {
    loop {
        if up.wait_for(|up| *up).await.is_err() {
            return;
        }
        let Ok(listener) = TcpListener::bind(("127.0.0.1", from)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { continue };
                    tokio::spawn(pipe(client, to, up.clone()));
                }
                changed = up.changed() => {
                    if changed.is_err() || !*up.borrow() {
                        break;
                    }
                }
            }
        }
    }
}

async fn pipe(mut client: TcpStream, to: u16, mut up: watch::Receiver<bool>) {
    let Ok(mut broker) = TcpStream::connect(("127.0.0.1", to)).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}
