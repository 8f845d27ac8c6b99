//! Migrations on a database made by an earlier version, on both backends.

use writ_infra::store::schema::migrate;
use writ_infra::store::statement::Statement;
use writ_infra::store::{Conn, Dialect, RowExt};
use writ_testing::{open_store, Backend};

writ_testing::on_both_backends!(the_audit_index_of_an_earlier_version_is_indexed_by_time);

async fn audit_indexes(conn: &mut Conn) -> Vec<String> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_index'
             AND sql IS NOT NULL ORDER BY name"
        }
        Dialect::Postgres => {
            "SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'public'
             AND tablename = 'audit_index' AND indexname <> 'audit_index_pkey' ORDER BY indexname"
        }
    };
    let rows = conn
        .fetch_all(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.iter().filter_map(|row| row.text("name")).collect()
}

async fn the_audit_index_of_an_earlier_version_is_indexed_by_time(backend: Backend) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(backend, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut conn = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit_indexes(&mut conn).await, ["audit_by_recorded_at"]);

    // The tables as version 2 left them.
    let schema = conn.dialect().live_schema();
    conn.batch(&format!(
        "DROP INDEX {schema}.audit_by_recorded_at;
         CREATE INDEX audit_by_subject ON audit_index (subject);
         CREATE INDEX audit_by_client ON audit_index (client_id);
         DELETE FROM writ_migrations WHERE version = 3;"
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        audit_indexes(&mut conn).await,
        ["audit_by_client", "audit_by_subject"]
    );

    let applied = migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied, 1, "only migration 3 was missing");
    assert_eq!(audit_indexes(&mut conn).await, ["audit_by_recorded_at"]);
    assert_eq!(
        migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}")),
        0
    );
}
