use super::*;
use crate::change::Change;
use crate::views::grants::grant;
use crate::views::tokens::token;
use crate::views::{GRANTS, TOKENS};
use crate::{Conn, RowExt, Target};

fn new_grant(gid: &str, expires_at: &str) -> Change {
    let text = |value: &str| Some(value.to_owned());
    Change::insert(
        &GRANTS,
        vec![
            (grant::gid, text(gid)),
            (grant::kind, text("client_credentials")),
            (grant::client_id, text("c")),
            (grant::sub, None),
            (grant::scopes, text("read")),
            (grant::audience, text("[]")),
            (grant::status, text("active")),
            (grant::created_at, text("2026-12-07T00:00:00.000000Z")),
            (grant::updated_at, text("2026-12-07T00:00:00.000000Z")),
            (grant::expires_at, text(expires_at)),
            (grant::cursor, text("0")),
            (grant::sid, None),
        ],
    )
}

fn new_token(key: &str, gid: &str, audience: Option<&str>) -> Change {
    let text = |value: &str| Some(value.to_owned());
    let mut values = vec![
        (token::token_key, text(key)),
        (token::kind, text("access")),
        (token::gid, text(gid)),
        (token::jti, text(key)),
        (token::scopes, text("read")),
        (token::issued_at, text("2026-12-07T00:00:00.000000Z")),
        (token::expires_at, text("2026-12-07T01:00:00.000000Z")),
        (token::status, text("active")),
    ];
    if let Some(audience) = audience {
        values.push((token::audience, text(audience)));
    }
    Change::insert(&TOKENS, values)
}

/// What an issuance's token event does to its grant.
fn extend(gid: &str, until: &str, cursor: &str) -> Change {
    Change::update(
        &GRANTS,
        vec![
            (grant::expires_at, Assign::AtLeast(until.into())),
            (grant::cursor, Assign::To(Some(cursor.into()))),
        ],
        vec![(grant::gid, gid.into())],
    )
}

/// Issuances, with every kind of change among them: updates by key of held
/// and of sent rows, updates by other columns, an upsert, a delete and a
/// key inserted again after it, two column lists for one table, and more
/// rows than one insert takes.
fn history() -> Vec<Change> {
    let mut changes = Vec::new();
    for n in 0..21 {
        let gid = format!("g{n:02}");
        changes.push(new_grant(&gid, "2026-12-07T00:00:00.000000Z"));
        let audience = (n % 3 == 0).then_some("[\"https://rs\"]");
        changes.push(new_token(&format!("t{n:02}"), &gid, audience));
        // Later, then earlier: AtLeast keeps the later.
        changes.push(extend(&gid, "2026-12-07T01:00:00.000000Z", &format!("{n}")));
        changes.push(extend(
            &gid,
            "2026-12-06T01:00:00.000000Z",
            &format!("{n}b"),
        ));
    }
    changes.push(Change::update(
        &TOKENS,
        vec![(token::status, Assign::To(Some("revoked".into())))],
        vec![(token::gid, "g01".into()), (token::status, "active".into())],
    ));
    changes.push(new_grant("g90", "2026-12-07T00:00:00.000000Z"));
    changes.push(Change::Insert {
        table: &GRANTS,
        values: vec![
            (grant::gid, Some("g02".into())),
            (grant::kind, Some("client_credentials".into())),
            (grant::client_id, Some("c".into())),
            (grant::scopes, Some("read".into())),
            (grant::audience, Some("[]".into())),
            (grant::status, Some("revoked".into())),
            (grant::created_at, Some("x".into())),
            (
                grant::updated_at,
                Some("2026-12-08T00:00:00.000000Z".into()),
            ),
            (grant::expires_at, Some("x".into())),
            (grant::cursor, Some("upserted".into())),
        ],
        replace: Some(&[grant::status, grant::updated_at]),
    });
    changes.push(extend("g02", "2026-12-09T00:00:00.000000Z", "after upsert"));
    changes.push(Change::Delete {
        table: &TOKENS,
        filter: vec![(token::token_key, "t04".into())],
    });
    changes.push(new_token("t04", "g90", None));
    changes.push(Change::update(
        &TOKENS,
        vec![(token::scopes, Assign::To(None))],
        vec![(token::token_key, "t04".into())],
    ));
    changes.push(extend("g90", "2026-12-10T00:00:00.000000Z", "last"));
    changes
}

async fn fresh(target: &Target) -> Conn {
    let mut conn = Conn::connect(target)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dialect = conn.dialect();
    let ddl = crate::schema::read_tables_ddl(dialect.live_schema(), dialect);
    conn.batch(&ddl).await.unwrap_or_else(|e| panic!("{e}"));
    conn
}

/// Every row of the two tables, each as its columns' values.
async fn dump(conn: &mut Conn) -> Vec<Vec<Option<String>>> {
    let schema = conn.dialect().live_schema();
    let mut rows = Vec::new();
    for table in [&GRANTS, &TOKENS] {
        let found = conn
            .fetch_all(&Statement::new(format!(
                "SELECT * FROM {schema}.{} ORDER BY {}",
                table.name, table.key[0]
            )))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for row in found {
            rows.push(table.columns.iter().map(|c| row.text(c)).collect());
        }
    }
    rows
}

async fn both_ways_agree(one: Target, other: Target) {
    let mut by_one = fresh(&one).await;
    let mut coalesced = fresh(&other).await;
    let dialect = by_one.dialect();
    let schema = dialect.live_schema();
    let singles: Vec<Statement> = history().iter().map(|c| c.statement(schema)).collect();
    let merged = statements(schema, dialect, history());
    assert!(
        merged.len() * 4 < singles.len(),
        "{} statements for {}",
        merged.len(),
        singles.len()
    );
    by_one
        .execute(&singles)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    coalesced
        .execute(&merged)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = dump(&mut by_one).await;
    assert_eq!(expected.len(), 22 + 21);
    assert_eq!(dump(&mut coalesced).await, expected);
}

#[tokio::test]
async fn coalesced_statements_leave_the_rows_the_changes_one_by_one_do() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    both_ways_agree(
        Target::Sqlite(dir.path().join("one.db")),
        Target::Sqlite(dir.path().join("coalesced.db")),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn coalesced_statements_leave_the_same_rows_on_postgres() {
    let mut databases = Vec::new();
    for _ in 0..2 {
        let url = writ_testing::fresh_postgres_database()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        databases.push(Target::Postgres(url));
    }
    let other = databases.pop().unwrap_or_else(|| panic!("two databases"));
    let one = databases.pop().unwrap_or_else(|| panic!("two databases"));
    both_ways_agree(one, other).await;
}

/// Nine client-credentials issuances' changes, as one batch's.
fn nine_issuances() -> Vec<Change> {
    let mut changes = Vec::new();
    for n in 0..9 {
        let gid = format!("g{n}");
        changes.push(new_grant(&gid, "2026-12-07T00:00:00.000000Z"));
        changes.push(new_token(&format!("t{n}"), &gid, None));
        changes.push(extend(
            &gid,
            "2026-12-07T01:00:00.000000Z",
            &format!("c{n}"),
        ));
    }
    changes
}

/// Each statement as its verb and table, and how many values it binds.
fn shapes(merged: &[Statement]) -> Vec<(&str, usize)> {
    merged
        .iter()
        .map(|s| (s.sql.split(" (").next().unwrap_or_default(), s.binds.len()))
        .collect()
}

/// On PostgreSQL, one insert of arrays per table, whatever the batch's size.
#[test]
fn a_batch_of_issuances_is_two_inserts_on_postgres() {
    let merged = statements("public", Dialect::Postgres, nine_issuances());
    assert_eq!(
        shapes(&merged),
        [
            ("INSERT INTO public.grants", 12),
            ("INSERT INTO public.tokens", 8)
        ]
    );
    assert!(merged[0].sql.ends_with("SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])"), "{}", merged[0].sql);
    let cursor = GRANTS.column(grant::cursor).unwrap_or_default();
    let cursors: Vec<Option<String>> = (0..9).map(|n| Some(format!("c{n}"))).collect();
    assert_eq!(
        merged[0].binds[cursor],
        crate::statement::Bind::Texts(cursors)
    );
}

/// Nine client-credentials issuances, as one batch: the grants and the
/// tokens in two inserts each (eight rows and one), the expiries folded in.
#[test]
fn a_batch_of_issuances_is_four_inserts() {
    let merged = statements("main", Dialect::Sqlite, nine_issuances());
    assert_eq!(
        shapes(&merged),
        [
            ("INSERT INTO main.grants", 8 * 12),
            ("INSERT INTO main.grants", 12),
            ("INSERT INTO main.tokens", 8 * 8),
            ("INSERT INTO main.tokens", 8),
        ]
    );
    // The last grant's expiry and cursor are the token event's.
    let last = &merged[1].binds;
    let expires_at = GRANTS.column(grant::expires_at).unwrap_or_default();
    let cursor = GRANTS.column(grant::cursor).unwrap_or_default();
    assert_eq!(
        last[expires_at],
        crate::statement::Bind::Text(Some("2026-12-07T01:00:00.000000Z".into()))
    );
    assert_eq!(
        last[cursor],
        crate::statement::Bind::Text(Some("c8".into()))
    );
}
