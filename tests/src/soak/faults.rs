//! The faults, on a schedule proportional to the run's length so that a
//! short rehearsal injects all of them too. Each is a window: from the
//! moment it is injected to `GRACE` after it is mended; errors are
//! expected only inside one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::lock;
use super::record::Recorder;
use super::setup::Soak;

/// How long after a fault is mended the deployment may still fail a
/// request: pools reconnect, a standby wins the lock.
pub const GRACE: Duration = Duration::from_secs(10);
const SLOW_CONNECTIONS: usize = 200;

#[derive(Debug, Clone)]
pub struct Window {
    pub fault: &'static str,
    pub start: Duration,
    pub end: Duration,
}

impl Window {
    pub fn covers(&self, at: Duration) -> bool {
        self.start <= at && at <= self.end
    }

    /// Whether a flow that ran from `started` to `ended` overlapped it.
    pub fn overlaps(&self, started: Duration, ended: Duration) -> bool {
        started <= self.end && self.start <= ended
    }
}

/// `name`'s value in a Prometheus text page at `base`.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
}

type Step = Result<(), String>;

/// Runs the schedule over `duration`; the windows, in order.
pub async fn inject(
    soak: Arc<Mutex<Soak>>,
    recorder: Arc<Recorder>,
    duration: Duration,
) -> Result<Vec<Window>, String> {
    let at = |fraction: f64| duration.mul_f64(fraction);
    let outage = (duration / 10).min(Duration::from_secs(60));
    let mut windows = Vec::new();
    let until = |when: Duration| {
        let recorder = recorder.clone();
        async move {
            let now = recorder.elapsed();
            if when > now {
                tokio::time::sleep(when - now).await;
            }
        }
    };
    let mut window = |fault, start: Duration| {
        windows.push(Window {
            fault,
            start,
            end: recorder.elapsed() + GRACE,
        });
        println!(
            "soak: {fault} at {start:?}, mended at {:?}",
            recorder.elapsed()
        );
    };

    until(at(0.15)).await;
    let start = recorder.elapsed();
    blocking(|| lock(&soak).cluster.stop())?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    blocking(|| lock(&soak).cluster.start())?;
    window("PostgreSQL stopped (immediate) and started", start);

    until(at(0.30)).await;
    let start = recorder.elapsed();
    lock(&soak).broker.stop();
    tokio::time::sleep(outage).await;
    blocking(|| lock(&soak).broker.start_again())?;
    window("broker stopped", start);

    until(at(0.45)).await;
    let start = recorder.elapsed();
    kill_active_projector(&soak).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    blocking(|| lock(&soak).start_projector().map_err(|e| e.to_string()))?;
    window("active projector SIGKILLed", start);

    until(at(0.60)).await;
    let start = recorder.elapsed();
    let stopped = lock(&soak).queries[0].take();
    if let Some(server) = stopped {
        blocking(|| {
            server.stop();
            Ok(())
        })?;
    }
    blocking(|| lock(&soak).start_query(0).map_err(|e| e.to_string()))?;
    window("query API A restarted", start);

    until(at(0.75)).await;
    let start = recorder.elapsed();
    let port = lock(&soak).command_port;
    let closed = slow_clients(port, outage).await;
    println!("soak: the command API closed {closed} slow connections");
    window("200 slow clients held connections", start);
    Ok(windows)
}

/// Runs a step that blocks (a child process, `pg_ctlcluster`) off the
/// runtime's workers.
fn blocking(step: impl FnOnce() -> Step) -> Step {
    tokio::task::block_in_place(step)
}

/// SIGKILLs the projector that says it is active, asking for up to 30 s:
/// a probe under load may time out.
async fn kill_active_projector(soak: &Arc<Mutex<Soak>>) -> Step {
    let client = reqwest::Client::new();
    for _ in 0..30 {
        let bases = lock(soak).projector_bases();
        for (index, base) in bases.iter().enumerate() {
            if metric(&client, base, "writ_projector_active").await == Some(1.0) {
                let (role, server) = lock(soak).projectors.remove(index);
                println!("soak: SIGKILL {role}");
                drop(server);
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err("no projector said it was active for 30 s".into())
}

/// Connections that send a request's headers a line every two seconds
/// and never finish, reopened whenever Writ closes them, for `hold`;
/// how many times Writ closed one.
async fn slow_clients(port: u16, hold: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + hold;
    let tasks: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|_| {
            tokio::spawn(async move {
                let mut closed = 0;
                while tokio::time::Instant::now() < deadline {
                    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                    else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    let mut line = b"POST /token HTTP/1.1\r\nHost: soak\r\n".to_vec();
                    while tokio::time::Instant::now() < deadline {
                        if stream.write_all(&line).await.is_err() {
                            closed += 1;
                            break;
                        }
                        line = b"X-Slow: 1\r\n".to_vec();
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
                closed
            })
        })
        .collect();
    let mut closed = 0;
    for task in tasks {
        closed += task.await.unwrap_or(0);
    }
    closed
}
