//! For tests on PostgreSQL: a fresh database per test on the server named
//! by `WRIT_TEST_POSTGRES` (an administrative URL; `bash scripts/test` sets
//! it after starting PostgreSQL).

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub const ADMIN_URL_VARIABLE: &str = "WRIT_TEST_POSTGRES";

/// Creates an empty database and returns its URL. Databases are named
/// `writ_test_*`; the test script drops leftovers before each run.
pub async fn fresh_postgres_database() -> Result<String, String> {
    let admin = std::env::var(ADMIN_URL_VARIABLE)
        .map_err(|_| format!("{ADMIN_URL_VARIABLE} is not set: run the suite with `bash scripts/test`, which starts PostgreSQL"))?;
    let options =
        PgConnectOptions::from_str(&admin).map_err(|e| format!("{ADMIN_URL_VARIABLE}: {e}"))?;
    let name = format!("writ_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = options
        .connect()
        .await
        .map_err(|e| format!("cannot reach PostgreSQL at {ADMIN_URL_VARIABLE}: {e}"))?;
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .map_err(|e| format!("cannot create {name}: {e}"))?;
    let _ = conn.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    let query = admin
        .split_once('?')
        .map(|(_, query)| format!("?{query}"))
        .unwrap_or_default();
    Ok(format!("{base}/{name}{query}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh store: SQLite under `dir`, or a new PostgreSQL database.
pub async fn open_store(
    backend: Backend,
    dir: &std::path::Path,
) -> Result<writ_store::Store, String> {
    match backend {
        Backend::Sqlite => writ_store::Store::open_sqlite(dir)
            .await
            .map_err(|e| e.to_string()),
        Backend::Postgres => {
            let url = fresh_postgres_database().await?;
            writ_store::Store::open_postgres(&url, writ_store::DEFAULT_MAX_BATCH)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// Runs each named `async fn(Backend)` as one test per backend. The
/// PostgreSQL one is ignored by a plain `cargo test`, which then says how
/// many it left out; `bash scripts/test` runs the ignored tests too.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }

            #[tokio::test]
            #[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// A PostgreSQL cluster of the test's own (`pg_createcluster`), for tests
/// that hold transactions open, stop the server or cut connections: the
/// global-order bound is cluster-wide, so they would stall everyone else.
/// Dropped with its data when the value is.
pub struct PrivateCluster {
    version: String,
    name: String,
    pub port: u16,
}

impl PrivateCluster {
    pub fn create(test: &str) -> Result<Self, String> {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("PostgreSQL is not installed: {e}"))?
            .flatten()
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(|v| v.parse::<u32>().ok())
            })
            .max()
            .ok_or("PostgreSQL is not installed")?
            .to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let name = format!(
            "writ_{test}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let cluster = Self {
            version,
            name,
            port,
        };
        cluster.run(
            "pg_createcluster",
            &["-p", &port.to_string(), &cluster.version, &cluster.name],
        )?;
        cluster.start()?;
        let create_role = "CREATE ROLE writ LOGIN SUPERUSER PASSWORD 'writ'";
        let status = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                "psql",
                "-q",
                "-p",
                &port.to_string(),
                "-c",
                create_role,
            ])
            .current_dir("/")
            .output()
            .map_err(|e| e.to_string())?;
        if !status.status.success() {
            return Err(format!(
                "cannot create the writ role: {}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        Ok(cluster)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://writ:writ@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start(&self) -> Result<(), String> {
        self.run("pg_ctlcluster", &[&self.version, &self.name, "start"])
    }

    /// Moves the cluster's transaction ids into `epoch` (`pg_resetwal`), as
    /// an operator does before restoring a log another cluster wrote.
    pub fn advance_epoch(&self, epoch: u32) -> Result<(), String> {
        self.run("pg_ctlcluster", &[&self.version, &self.name, "stop"])?;
        let resetwal = format!("/usr/lib/postgresql/{}/bin/pg_resetwal", self.version);
        let data = format!("/var/lib/postgresql/{}/{}", self.version, self.name);
        let epoch = format!("--epoch={epoch}");
        self.run(
            "runuser",
            &["-u", "postgres", "--", &resetwal, &epoch, &data],
        )?;
        self.start()
    }

    /// Stops at once, as a crash would.
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctlcluster",
            &["--mode=immediate", &self.version, &self.name, "stop"],
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = std::process::Command::new(program)
            .args(args)
            .current_dir("/")
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .current_dir("/")
            .output();
    }
}

/// A TCP proxy in front of PostgreSQL that, once armed, forwards the next
/// client message containing `COMMIT` and then cuts that connection: the
/// server may commit, the client never hears (fault F2).
pub struct CuttingProxy {
    pub port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    pub async fn start(upstream_port: u16) -> Result<Self, String> {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (armed_for_loop, cuts_for_loop) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                else {
                    continue;
                };
                tokio::spawn(relay(
                    client,
                    server,
                    armed_for_loop.clone(),
                    cuts_for_loop.clone(),
                ));
            }
        });
        Ok(Self { port, armed, cuts })
    }

    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn cuts(&self) -> usize {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = client_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 || server_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
            let chunk = &buffer[..read];
            let commits = chunk.windows(6).any(|w| w == b"COMMIT");
            if commits && armed.swap(false, Ordering::SeqCst) {
                let _ = server_write.flush().await;
                cuts.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = server_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 || client_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    // When either side ends, both halves are dropped: the cut.
    tokio::select! {
        _ = upstream => {},
        _ = downstream => {},
    }
}

/// Registers a confidential client-credentials client: the fixture the log,
/// projector and PostgreSQL tests share.
pub fn service_client_registration(client_id: &str) -> writ_domain::client::ClientCommand {
    use writ_domain::client::{ClientCommand, ClientSettings};
    use writ_domain::values::{ApplicationType, GrantType, ScopeSet, SecretHash, TokenFormat};
    ClientCommand::Register {
        client_id: client_id.to_owned(),
        settings: ClientSettings {
            name: "service".into(),
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: ScopeSet::parse("api").unwrap_or_default(),
            public: false,
            application_type: ApplicationType::Web,
            token_format: TokenFormat::Jwt,
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 3600,
            audience: vec![],
            resources: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            id_token_signed_response_alg: None,
            revocation_feed: false,
            require_pushed_authorization_requests: false,
            dpop_bound_access_tokens: false,
            fapi2_security_profile: false,
            token_endpoint_auth_method: None,
            jwks: None,
            jwks_uri: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
        },
        secret_hash: Some(SecretHash("ab".repeat(32))),
        registration_token_hash: None,
    }
}
