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
pub async fn open_store(backend: Backend, dir: &std::path::Path) -> Result<crate::Store, String> {
    match backend {
        Backend::Sqlite => crate::Store::open_sqlite(dir)
            .await
            .map_err(|e| e.to_string()),
        Backend::Postgres => {
            let url = fresh_postgres_database().await?;
            crate::Store::open_postgres(&url, crate::store::DEFAULT_MAX_BATCH)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// Runs each named `async fn(Backend)` as one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::testing::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::testing::Backend::Postgres).await
            }
        }
    )*};
}
