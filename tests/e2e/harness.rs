//! Builds `writ` once per test process and runs it: one-shot CLI commands
//! and a `serve` process with its log captured.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;

/// Builds the binary with the same cargo, profile and feature selection as
/// the test run (`--workspace --all-targets`, which unifies features the
/// way `cargo test` does), so this is a no-op after the test build and a
/// stale `target/` binary can never be the one under test.
///
/// `WRIT_TEST_BINARY` names another binary instead, for writing fixtures
/// with an earlier Writ (`upgrade::write_the_fixture`).
pub fn writ_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(given) = std::env::var_os("WRIT_TEST_BINARY") {
            return PathBuf::from(given);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut build = Command::new(cargo);
        // Cargo gives this test process the variables of the crate under
        // test; some build scripts (ring's) rerun when they change, which
        // would rebuild half the tree. The build must see the shell's view.
        for (name, _) in std::env::vars() {
            let per_crate = name.starts_with("CARGO_PKG_")
                || matches!(
                    name.as_str(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                );
            if per_crate {
                build.env_remove(name);
            }
        }
        let output = build
            .current_dir(&workspace)
            // The same selection as the test script's build phase, so
            // features unify alike and this is a no-op there; `-p writ-cli`
            // alone would rebuild sqlx with other features (minutes in CI).
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--all-targets",
                "--message-format=json",
            ])
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
        assert!(output.status.success(), "building writ failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| {
                message["target"]["name"] == "writ" && message["profile"]["test"] == false
            })
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo did not report the writ executable"))
    })
}

pub struct DataDir {
    pub dir: tempfile::TempDir,
}

impl DataDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn database(&self) -> PathBuf {
        self.path().join("writ.db")
    }

    /// Creates the key file the way an operator would.
    pub fn with_keys() -> Self {
        let data = Self::new();
        data.writ(&["keys", "init"]).success();
        data
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(writ_binary());
        command
            .arg("--data-dir")
            .arg(self.path())
            .args(args)
            .env_remove("WRIT_LOG");
        command
    }

    pub fn writ(&self, args: &[&str]) -> Run {
        self.writ_with_stdin(args, "")
    }

    pub fn writ_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run(self.command(args), stdin)
    }

    pub async fn pool(&self) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(self.database())
            .read_only(true);
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn event_count(&self) -> i64 {
        if !self.database().exists() {
            return 0;
        }
        let pool = self.pool().await;
        let count = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
        pool.close().await;
        count
    }
}

pub fn run(mut command: Command, stdin: &str) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start writ: {e}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    Run(child.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
}

pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn success(self) -> Self {
        assert!(
            self.0.status.success(),
            "writ failed: {}{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }

    /// A refusal: non-zero exit, exactly one line on stderr, no panic.
    pub fn refused(self) -> String {
        let stderr = self.stderr();
        assert!(
            !self.0.status.success(),
            "expected a refusal, got success: {}",
            self.stdout()
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "expected one line, got: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
        stderr
    }
}

/// A running `writ serve`, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(data: &DataDir) -> Self {
        Self::start_command(data.command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ]))
    }

    pub fn start_command(mut command: Command) -> Self {
        let mut child = command
            .env("WRIT_PROJECTOR_CHECK_INTERVAL", "20ms")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start writ serve: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let sink = log.clone();
        std::thread::spawn(move || {
            // The line is kept before the address is announced, so a test
            // that has the address also has the line that gave it.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let address = writ_tests::writ_process::listen_address(&line);
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                if let Some(address) = address {
                    let _ = address_tx.send(address);
                }
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "writ serve did not start; log: {:?}",
                    log.lock().map(|l| l.clone())
                )
            });
        Self {
            child,
            address,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGKILL: no graceful shutdown, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        // Quiet: the process may have exited already.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Polls `check` until it yields a value or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `rounds` numbered rounds, `concurrency` at a time.
pub async fn rounds<F, Fut>(rounds: usize, concurrency: usize, round: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    futures::stream::iter(0..rounds)
        .for_each_concurrent(concurrency, round)
        .await;
}

/// Random letters, for names that must not appear in clear anywhere.
pub fn random_word(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect()
}

pub use writ_testing::Backend;

/// A data directory, plus a fresh PostgreSQL database when the backend is
/// PostgreSQL. Every command gets the matching flags.
pub struct Deployment {
    pub data: DataDir,
    pub database_url: Option<String>,
    /// Opened once, on first use: each opening runs migrations and starts
    /// a committer.
    store: tokio::sync::OnceCell<writ_store::Store>,
}

impl Deployment {
    /// With PostgreSQL the key file must exist before any command runs, as
    /// for an operator; on SQLite the first `serve` may create it.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self {
                data: DataDir::new(),
                database_url: None,
                store: Default::default(),
            },
            Backend::Postgres => {
                let url = writ_testing::fresh_postgres_database()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                Self::on_postgres(url)
            }
        }
    }

    /// A deployment on a given PostgreSQL database (a private cluster's),
    /// with its key file.
    pub fn on_postgres(url: String) -> Self {
        let deployment = Self {
            data: DataDir::new(),
            database_url: Some(url),
            store: Default::default(),
        };
        deployment.writ(&["keys", "init"]).success();
        deployment
    }

    /// A deployment on a database `name` in a PostgreSQL cluster of the
    /// test's own, for tests that stop the server or hold transactions
    /// open; the cluster is dropped with the returned guard.
    pub fn on_private_cluster(name: &str) -> (writ_testing::PrivateCluster, Self) {
        let cluster = writ_testing::PrivateCluster::create(name).unwrap_or_else(|e| panic!("{e}"));
        let port = cluster.port.to_string();
        let created = Command::new("runuser")
            .args([
                "-u", "postgres", "--", "createdb", "-p", &port, "-O", "writ", name,
            ])
            .current_dir("/")
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(created.success(), "createdb {name} failed");
        let deployment = Self::on_postgres(cluster.url(name));
        (cluster, deployment)
    }

    pub async fn with_keys(backend: Backend) -> Self {
        let deployment = Self::new(backend).await;
        if deployment.database_url.is_none() {
            deployment.writ(&["keys", "init"]).success();
        }
        deployment
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.data.command(&[]);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command.args(args);
        command
    }

    pub fn writ(&self, args: &[&str]) -> Run {
        self.writ_with_stdin(args, "")
    }

    pub fn writ_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run(self.command(args), stdin)
    }

    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    pub fn serve_with(&self, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--log-format", "json"];
        args.extend_from_slice(extra);
        Server::start_command(self.command(&args))
    }

    /// The store, opened in this process (its own committer and pools).
    pub async fn store(&self) -> writ_store::Store {
        let open = || async {
            let opened = match &self.database_url {
                Some(url) => {
                    writ_store::Store::open_postgres(url, writ_store::DEFAULT_MAX_BATCH).await
                }
                None => writ_store::Store::open_sqlite(self.data.path()).await,
            };
            opened.unwrap_or_else(|e| panic!("{e}"))
        };
        self.store.get_or_init(open).await.clone()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let statement = writ_store::statement::Statement::new(sql);
        self.store()
            .await
            .db()
            .scalar_i64(&statement)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A connection of its own to the database, for writing behind
    /// Writ's back (the store's pools only read on SQLite).
    pub async fn conn(&self) -> writ_store::Conn {
        let target = match &self.database_url {
            Some(url) => writ_store::Target::Postgres(url.clone()),
            None => writ_store::Target::Sqlite(self.data.database()),
        };
        writ_store::Conn::connect(&target)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GrantRevoked` events whose reason is `reason` (the policies').
    pub async fn count_revocations(&self, reason: &str) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM events WHERE event_type = 'GrantRevoked' \
             AND CAST(payload AS text) LIKE '%{reason}%'"
        ))
        .await
    }

    pub async fn event_count(&self) -> i64 {
        if self.database_url.is_none() && !self.data.database().exists() {
            return 0;
        }
        self.count("SELECT count(*) FROM events").await
    }

    /// Events counted behind Writ's back: opening the store from this
    /// build would migrate the database first.
    pub async fn raw_event_count(&self) -> i64 {
        self.raw_count("SELECT count(*) AS n FROM events").await
    }

    /// `sql`'s one number, named `n`, read behind Writ's back.
    pub async fn raw_count(&self, sql: &str) -> i64 {
        use writ_store::RowExt;
        let rows = self
            .conn()
            .await
            .fetch_all(&writ_store::statement::Statement::new(sql))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rows.first().and_then(|row| row.int("n")).unwrap_or(-1)
    }
}
