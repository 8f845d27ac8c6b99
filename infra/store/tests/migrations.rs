//! Versioned migrations on both backends: a database of an earlier Writ is
//! adopted without running anything, a newer or edited one is refused, a
//! missing migration is applied, released files never change, and the live
//! tables the migrations make are the ones the rebuild's template makes.

use sha2::{Digest, Sha384};
use writ_store::migrations::{migrate, sources, MigrationError};
use writ_store::schema::{read_tables_ddl, REBUILDABLE_TABLES};
use writ_store::statement::Statement;
use writ_store::{Conn, Dialect, RowExt};
use writ_testing::{open_store, Backend};

writ_testing::on_both_backends!(
    the_audit_index_of_an_earlier_version_is_indexed_by_time,
    a_database_of_an_earlier_writ_is_adopted_without_running_anything,
    a_database_from_a_newer_writ_or_with_an_edited_migration_is_refused,
    the_live_tables_are_the_ones_the_rebuild_template_makes,
);

/// SHA-384 of every released migration, as sqlx records it. A release
/// freezes its files: editing one fails here before it fails a database.
const RELEASED: &[(&str, i64, &str)] = &[
    ("sqlite", 1, "508b3127e7be0ccceb13ebb59ae12764f7d7e16457f471a4ab3e8c94fff29956465d0075d495209001ae884b3da90997"),
    ("sqlite", 2, "3f4d9549d52ea0c931ae86d265fa5fc27a074191c653040e5df69f715ca9bf73c9d3c3bd3ec4f889b4434bcec785860c"),
    ("sqlite", 3, "2466075982b64c5cb6cd0becc1dee4a269abbf6e70208af07e9afbc1f4c4ca5e369b12cc2cad1ad5eaa7fd38098cab40"),
    ("sqlite", 4, "79fdf3f0089410659dfe9d4b8f59f0e24b999f129140e2b6cbf21e9a7b65463546fab3195d2ba0c1f378486d5622d08c"),
    ("sqlite", 5, "0be9c019fc91365b3c2bb5a78089b27bb36e2579f62b413095b76b92dcd93d29af41b0a14416ac0e406a569707aab47b"),
    ("sqlite", 6, "0840e9eaa05f60e9d8bd36668884872f546713a0134606525a0c162e1e42e842e9e02961e971e0902f215c7cfe5fdb8e"),
    ("sqlite", 7, "2e10e166619fc57dd0591eb93d2b93ee07a9f14db11b4dd6a17effda2e2f505ad8839c64e7941bad433f95f01307dd92"),
    ("sqlite", 8, "13fdf7d97f50fb154bef347180bab18139afdf312f3827f5afc63901bddc2ae450fe9f5e0f9ee5e4344627c3fdaa8565"),
    ("postgres", 1, "f6ab718719cf38a5015f3a70615f6be509495c9f1e85b8071d4de3327ec79fe1c0b2c9cfc679c368b7b97bd69908aef9"),
    ("postgres", 2, "68f4ed48e5c839a8f915133607f427bb7897f3d060cb59b2cbe665926f9e04aff2fb3142f92fcbe69e9629bb22a7b9af"),
    ("postgres", 3, "33a833152c3f350e58bc44ed613fb19005bb624f7610fbfd70f544a336c5af009515c2be84c486ec37c8609547d9ccbf"),
    ("postgres", 4, "6c83470e124bdf4ace3208e56e6adf09e452a8ca7b7c966978d5d16e5eb61dc2bfade0763de66d8184735894127d632f"),
    ("postgres", 5, "95d337ceeafd065d69634bae035c6715a0e74cbefa2a7f0daa40b27e1912adc8605a2867fb8ec6eb3fe5c3a331ee36f7"),
    ("postgres", 6, "fba7559f26706fef8d905a9873c343618ab5a7925f14bda4f5db0cb03d2216ea553555428ebb36d76c43f06d770f393d"),
    ("postgres", 7, "7e8b7940081d76349b150e52335afddf50a59e2b8351727e1b70709476c5d09b8210bc0e013c10512f6a1571a452627d"),
    ("postgres", 8, "4834877a070ee929d02182ab20ead6b762990469956ad32f4b65dc0fde8417930ac9ff686a54987532e3ffb900f23686"),
];

#[test]
fn released_migrations_are_never_edited() {
    for (dialect, name) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
        for (version, _, sql) in sources(dialect) {
            let released = RELEASED
                .iter()
                .find(|(d, v, _)| *d == name && v == version)
                .map(|(_, _, checksum)| *checksum);
            let Some(released) = released else {
                continue; // not released yet: add it here when it is
            };
            let checksum = hex::encode(Sha384::digest(sql.as_bytes()));
            assert_eq!(checksum, released, "{name} migration {version} was edited");
        }
    }
    for (dialect, name) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
        let versions: Vec<i64> = sources(dialect).iter().map(|(v, _, _)| *v).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected, "{name}: numbered from 1 without gaps");
    }
}

async fn connect(backend: Backend) -> (tempfile::TempDir, Conn) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open_store(backend, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let conn = Conn::connect(store.target())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, conn)
}

async fn texts(conn: &mut Conn, sql: &str) -> Vec<String> {
    let rows = conn
        .fetch_all(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter().filter_map(|row| row.text("t")).collect()
}

async fn audit_indexes(conn: &mut Conn) -> Vec<String> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "SELECT name AS t FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_index'
             AND sql IS NOT NULL ORDER BY name"
        }
        Dialect::Postgres => {
            "SELECT indexname::text AS t FROM pg_indexes WHERE schemaname = 'public'
             AND tablename = 'audit_index' AND indexname <> 'audit_index_pkey' ORDER BY indexname"
        }
    };
    texts(conn, sql).await
}

async fn batch(conn: &mut Conn, sql: &str) {
    conn.batch(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn the_audit_index_of_an_earlier_version_is_indexed_by_time(backend: Backend) {
    let (_dir, mut conn) = connect(backend).await;
    assert_eq!(
        audit_indexes(&mut conn).await,
        ["audit_by_aggregate", "audit_by_recorded_at"]
    );

    // The tables as version 2 left them.
    let schema = conn.dialect().live_schema();
    batch(
        &mut conn,
        &format!(
            "DROP INDEX {schema}.audit_by_recorded_at;
             CREATE INDEX audit_by_subject ON audit_index (subject);
             CREATE INDEX audit_by_client ON audit_index (client_id);
             ALTER TABLE tokens DROP COLUMN audience;
             ALTER TABLE tokens DROP COLUMN jkt;
             DROP INDEX {schema}.sessions_by_sub;
             DROP INDEX {schema}.grants_by_parent;
             ALTER TABLE grants DROP COLUMN parent_gid;
             ALTER TABLE grants DROP COLUMN ancestors;
             ALTER TABLE grants DROP COLUMN act;
             ALTER TABLE tokens DROP COLUMN status_list;
             ALTER TABLE tokens DROP COLUMN status_idx;
             DROP TABLE status_invalid;
             DROP INDEX {schema}.audit_by_aggregate;
             DELETE FROM _sqlx_migrations WHERE version >= 3;"
        ),
    )
    .await;
    assert_eq!(
        audit_indexes(&mut conn).await,
        ["audit_by_client", "audit_by_subject"]
    );

    let report = migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.applied,
        [
            (3, "audit index by time".to_owned()),
            (4, "token audience".to_owned()),
            (5, "token dpop key".to_owned()),
            (6, "sessions by subject".to_owned()),
            (7, "token exchange lineage".to_owned()),
            (8, "token status lists".to_owned()),
            (9, "audit subject of grants".to_owned())
        ]
    );
    assert_eq!(report.current, 9);
    assert_eq!(
        audit_indexes(&mut conn).await,
        ["audit_by_aggregate", "audit_by_recorded_at"]
    );
    let again = migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.applied.is_empty() && again.adopted.is_empty());
}

/// Writ before versioned migrations kept `writ_migrations (version,
/// applied_at)`. Running migration 1 again would fail (its tables exist),
/// so success itself shows nothing ran; what came after 3 is applied.
async fn a_database_of_an_earlier_writ_is_adopted_without_running_anything(backend: Backend) {
    let (_dir, mut conn) = connect(backend).await;
    let schema = conn.dialect().live_schema();
    let earlier = |versions: &str| {
        format!(
            "DROP TABLE _sqlx_migrations;
             ALTER TABLE tokens DROP COLUMN audience;
             ALTER TABLE tokens DROP COLUMN jkt;
             DROP INDEX {schema}.sessions_by_sub;
             DROP INDEX {schema}.grants_by_parent;
             ALTER TABLE grants DROP COLUMN parent_gid;
             ALTER TABLE grants DROP COLUMN ancestors;
             ALTER TABLE grants DROP COLUMN act;
             ALTER TABLE tokens DROP COLUMN status_list;
             ALTER TABLE tokens DROP COLUMN status_idx;
             DROP TABLE status_invalid;
             DROP INDEX {schema}.audit_by_aggregate;
             CREATE TABLE writ_migrations (version bigint PRIMARY KEY, applied_at text NOT NULL);
             INSERT INTO writ_migrations VALUES {versions};"
        )
    };
    batch(
        &mut conn,
        &earlier(
            "(1, '2026-11-30T00:00:00Z'), (2, '2026-11-30T00:00:00Z'), (3, '2026-12-01T00:00:00Z')",
        ),
    )
    .await;
    let report = migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.adopted, [1, 2, 3]);
    assert_eq!(
        report.applied,
        [
            (4, "token audience".to_owned()),
            (5, "token dpop key".to_owned()),
            (6, "sessions by subject".to_owned()),
            (7, "token exchange lineage".to_owned()),
            (8, "token status lists".to_owned()),
            (9, "audit subject of grants".to_owned())
        ],
        "{report:?}"
    );
    assert_eq!(report.current, 9);
    let again = migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.adopted.is_empty(), "adopted once: {again:?}");

    // A database of the version before the audit index moved: 1 and 2
    // adopted, 3 applied.
    batch(&mut conn, "DROP TABLE writ_migrations;").await;
    batch(
        &mut conn,
        &earlier("(1, '2026-11-30T00:00:00Z'), (2, '2026-11-30T00:00:00Z')"),
    )
    .await;
    let report = migrate(&mut conn).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.adopted, [1, 2]);
    assert_eq!(
        report.applied,
        [
            (3, "audit index by time".to_owned()),
            (4, "token audience".to_owned()),
            (5, "token dpop key".to_owned()),
            (6, "sessions by subject".to_owned()),
            (7, "token exchange lineage".to_owned()),
            (8, "token status lists".to_owned()),
            (9, "audit subject of grants".to_owned())
        ]
    );
}

async fn a_database_from_a_newer_writ_or_with_an_edited_migration_is_refused(backend: Backend) {
    let (_dir, mut conn) = connect(backend).await;
    let recorded = "SELECT version::text AS t FROM _sqlx_migrations ORDER BY version";
    let recorded = match conn.dialect() {
        Dialect::Sqlite => recorded.replace("version::text", "CAST(version AS text)"),
        Dialect::Postgres => recorded.to_owned(),
    };
    batch(
        &mut conn,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         SELECT 9999, 'from the future', TRUE, checksum, 0 FROM _sqlx_migrations WHERE version = 1;",
    )
    .await;
    let before = texts(&mut conn, &recorded).await;
    match migrate(&mut conn).await {
        Err(MigrationError::Newer(9999)) => {}
        other => panic!("a newer database must be refused: {other:?}"),
    }
    let message = MigrationError::Newer(9999).to_string();
    assert!(message.contains("newer Writ"), "{message}");
    assert_eq!(texts(&mut conn, &recorded).await, before, "nothing changed");

    batch(
        &mut conn,
        "DELETE FROM _sqlx_migrations WHERE version = 9999;",
    )
    .await;
    let edited = match conn.dialect() {
        Dialect::Sqlite => "UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 2;",
        Dialect::Postgres => "UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 2;",
    };
    batch(&mut conn, edited).await;
    match migrate(&mut conn).await {
        Err(MigrationError::Edited(2)) => {}
        other => panic!("an edited migration must be refused: {other:?}"),
    }
}

/// The rebuild compares tables it makes from the template with the live
/// ones row for row; a migration that changes a live table must change
/// the template too.
async fn the_live_tables_are_the_ones_the_rebuild_template_makes(backend: Backend) {
    let (_dir, mut conn) = connect(backend).await;
    let dialect = conn.dialect();
    match dialect {
        Dialect::Sqlite => batch(&mut conn, "ATTACH DATABASE ':memory:' AS scratch;").await,
        Dialect::Postgres => batch(&mut conn, "CREATE SCHEMA scratch;").await,
    }
    batch(&mut conn, &read_tables_ddl("scratch", dialect)).await;
    let live = dialect.live_schema();
    for table in REBUILDABLE_TABLES {
        let (columns, indexes) = match dialect {
            Dialect::Sqlite => (
                "SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || pk AS t
                 FROM pragma_table_info('{table}', '{schema}') ORDER BY cid",
                "SELECT name AS t FROM {schema}.sqlite_master
                 WHERE type = 'index' AND tbl_name = '{table}' AND sql IS NOT NULL ORDER BY name",
            ),
            Dialect::Postgres => (
                "SELECT column_name || ' ' || data_type || ' ' || is_nullable AS t
                 FROM information_schema.columns
                 WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position",
                "SELECT replace(indexdef, '{schema}.', '') AS t FROM pg_indexes
                 WHERE schemaname = '{schema}' AND tablename = '{table}' ORDER BY indexname",
            ),
        };
        for query in [columns, indexes] {
            let of = |schema: &str| query.replace("{table}", table).replace("{schema}", schema);
            let expected = texts(&mut conn, &of("scratch")).await;
            assert!(!expected.is_empty() || query == indexes, "{table}");
            assert_eq!(texts(&mut conn, &of(live)).await, expected, "{table}");
        }
    }
}
