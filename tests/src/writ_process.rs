//! The release `writ` binary as a separate process, for benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use writ_store::statement::Statement;
use writ_store::Db;

/// Builds the release binary and returns it. The packages are the ones the
/// benchmarks are documented to be built with, so features unify the same
/// way and this is a no-op (`-p writ-cli` alone would rebuild sqlx).
/// `WRIT_TEST_BINARY` names another build instead, for comparing two
/// builds alternately in one run.
pub fn release_binary() -> Result<PathBuf, String> {
    if let Some(given) = std::env::var_os("WRIT_TEST_BINARY") {
        return Ok(PathBuf::from(given));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "writ-cli",
            "-p",
            "writ-tests",
            "--bins",
        ])
        .current_dir(&workspace)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release -p writ-cli -p writ-tests --bins failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    Ok(target.join("release/writ"))
}

/// The benchmark's one positional argument (a count), or `default`; a
/// malformed one is an error, not the default.
pub fn count_argument<T: std::str::FromStr>(default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    std::env::args()
        .nth(1)
        .map(|raw| raw.parse().map_err(|e| format!("{raw:?}: {e}")))
        .transpose()
        .map(|given| given.unwrap_or(default))
}

/// `[SECONDS] [--postgres URL]`: how long each run lasts (10 s unless
/// given) and, with `--postgres`, the database instead of embedded SQLite.
pub fn run_arguments() -> Result<(Duration, Option<String>), String> {
    let mut args = std::env::args().skip(1);
    let mut seconds = Duration::from_secs(10);
    let mut database_url = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" => database_url = args.next(),
            other => {
                seconds = Duration::from_secs(other.parse().map_err(|e| format!("{other:?}: {e}"))?)
            }
        }
    }
    Ok((seconds, database_url))
}

/// The address in `serve`'s "writ listening on ADDR" line, if this is it.
pub fn listen_address(log_line: &str) -> Option<String> {
    let rest = log_line.split("writ listening on ").nth(1)?;
    Some(
        rest.chars()
            .take_while(|c| *c != '"' && !c.is_whitespace())
            .collect(),
    )
}

/// Where a deployment lives: its data directory and, optionally, PostgreSQL.
#[derive(Clone)]
pub struct Deployment {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
}

/// A port nobody listens on now (the OS's pick; free until someone binds).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| e.to_string())
}

/// A client as `writ client create` registered it.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub secret: Option<String>,
}

impl Registered {
    /// Its `Authorization: Basic` header; empty for a public client.
    pub fn basic(&self) -> String {
        self.secret
            .as_deref()
            .map(|secret| crate::token_endpoints::basic(&self.id, secret))
            .unwrap_or_default()
    }

    pub fn secret(&self) -> &str {
        self.secret.as_deref().unwrap_or_default()
    }
}

impl Deployment {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command.args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Result<Output, String> {
        let output = self
            .command(args)
            .output()
            .map_err(|e| format!("writ: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(output)
    }

    /// `writ --json client create ARGS`: the client's id and its secret
    /// (none for a public client).
    pub fn create_client(&self, args: &[&str]) -> Result<Registered, String> {
        let mut all = vec!["--json", "client", "create"];
        all.extend_from_slice(args);
        let created: serde_json::Value =
            serde_json::from_slice(&self.run(&all)?.stdout).map_err(|e| e.to_string())?;
        Ok(Registered {
            id: created["client_id"].as_str().unwrap_or_default().to_owned(),
            secret: created["client_secret"].as_str().map(str::to_owned),
        })
    }

    /// `writ user create --username NAME ARGS --password-stdin`, the
    /// password written to its stdin as a person would type it.
    pub fn create_user(&self, username: &str, password: &str, args: &[&str]) -> Result<(), String> {
        use std::io::Write;
        let mut all = vec!["user", "create", "--username", username];
        all.extend_from_slice(args);
        all.push("--password-stdin");
        let mut child = self
            .command(&all)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("writ: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}").map_err(|e| e.to_string())?;
        }
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(())
    }

    /// `writ serve` with the defaults, its log going to a file.
    pub fn serve(&self) -> Result<Server, String> {
        self.start(&["serve", "--listen", "127.0.0.1:0"])
    }

    /// A long-running `writ` process (`serve`, `command-api`, …) as shipped,
    /// its log (the default text format) going straight to a file named
    /// after it, as an operator's redirect would: through a pipe, each
    /// access-log line was a write that woke the reader, and at 10,000
    /// requests/s that halved Writ's throughput.
    pub fn start(&self, args: &[&str]) -> Result<Server, String> {
        self.start_logged(args.first().copied().unwrap_or("writ"), args)
    }

    /// [`Self::start`] with its log in `NAME.log`, for several processes
    /// of one kind or one started again.
    pub fn start_logged(&self, name: &str, args: &[&str]) -> Result<Server, String> {
        let log_path = self.data_dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("writ {name}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(address) = logged.lines().find_map(listen_address) {
                return Ok(Server {
                    child,
                    base: format!("http://{address}"),
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("writ {name} exited ({status}): {logged}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("writ {name} did not start within a minute"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A fresh PostgreSQL database and a data directory with a key file; the
/// directory lives as long as the returned guard.
pub async fn fresh_postgres_deployment(
    binary: &Path,
) -> Result<(String, tempfile::TempDir, Deployment), Box<dyn std::error::Error>> {
    let url = writ_testing::fresh_postgres_database().await?;
    let dir = tempfile::tempdir()?;
    let deployment = Deployment {
        binary: binary.to_owned(),
        data_dir: dir.path().to_owned(),
        database_url: Some(url.clone()),
    };
    deployment.run(&["keys", "init"])?;
    Ok((url, dir, deployment))
}

/// A deployment in `work` with a key file and one client_secret_basic
/// client with scope `read` (and `client_args`), and that client's
/// `Authorization` header: how the token benchmarks start.
pub fn bench_deployment(
    work: &Path,
    database_url: Option<String>,
    client_args: &[&str],
) -> Result<(Deployment, String), Box<dyn std::error::Error>> {
    let deployment = Deployment {
        binary: release_binary()?,
        data_dir: work.join("writ"),
        database_url,
    };
    std::fs::create_dir_all(&deployment.data_dir)?;
    deployment.run(&["keys", "init"])?;
    let mut args = vec!["--name", "bench", "--scope", "read"];
    args.extend_from_slice(client_args);
    let authorization = deployment.create_client(&args)?.basic();
    Ok((deployment, authorization))
}

/// `AccessTokenIssued` events in the deployment's log: one per token
/// issued, to hold against the 200s a generator counted.
pub async fn count_issuance_events(deployment: &Deployment) -> Result<i64, sqlx::Error> {
    let target = match &deployment.database_url {
        Some(url) => writ_store::Target::Postgres(url.clone()),
        None => writ_store::Target::Sqlite(deployment.data_dir.join("writ.db")),
    };
    let mut conn = writ_store::Conn::connect(&target).await?;
    let row = conn
        .fetch_optional(&Statement::new(
            "SELECT count(*) AS n FROM events WHERE event_type = 'AccessTokenIssued'",
        ))
        .await?;
    Ok(row
        .and_then(|r| r.get("n").and_then(|v| v.as_i64()))
        .unwrap_or(0))
}

/// Whether the audit index and the policies have both passed `position`.
pub async fn projected_past(db: &Db, position: i64) -> bool {
    let behind = db
        .scalar_i64(
            &Statement::new(
                "SELECT count(*) FROM (VALUES ('audit_index'), ('policies')) AS p(projection)
                 LEFT JOIN projector_checkpoints c USING (projection)
                 WHERE coalesce(c.position, 0) < $1",
            )
            .int(position),
        )
        .await
        .unwrap_or(1);
    behind == 0
}

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for the graceful stop.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
