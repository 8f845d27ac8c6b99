//! What one event changes in the inline read tables, as data: inserts,
//! updates and deletes of rows by equality filters. [`crate::inline`]
//! says what changes; two executors carry it out, the same description
//! either way: [`Change::statement`] renders SQL for the committer and the
//! statement replay, and [`crate::fold::Tables`] applies it in
//! memory for the bulk replay, which loads the result with COPY.

use super::statement::Statement;
use super::views::Table;

/// A new value for a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    To(Option<String>),
    /// The later of the current value and this one (timestamps, which
    /// compare as text).
    AtLeast(String),
}

impl Assign {
    /// The assignment carried out on a value in memory, as its SQL does:
    /// a null current value compares as unknown, so `AtLeast` leaves it.
    pub fn apply(self, cell: &mut Option<String>) {
        match self {
            Self::To(value) => *cell = value,
            Self::AtLeast(offered) => {
                if cell.as_ref().is_some_and(|current| *current < offered) {
                    *cell = Some(offered);
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new row. With `replace`, a row with the same key keeps its other
    /// columns and takes these from the new one.
    Insert {
        table: &'static Table,
        values: Vec<(&'static str, Option<String>)>,
        replace: Option<&'static [&'static str]>,
    },
    /// The rows whose columns equal `filter`.
    Update {
        table: &'static Table,
        set: Vec<(&'static str, Assign)>,
        filter: Vec<(&'static str, String)>,
    },
    Delete {
        table: &'static Table,
        filter: Vec<(&'static str, String)>,
    },
}

impl Change {
    pub fn insert(table: &'static Table, values: Vec<(&'static str, Option<String>)>) -> Self {
        Self::Insert {
            table,
            values,
            replace: None,
        }
    }

    pub fn update(
        table: &'static Table,
        set: Vec<(&'static str, Assign)>,
        filter: Vec<(&'static str, String)>,
    ) -> Self {
        Self::Update { table, set, filter }
    }

    pub fn table(&self) -> &'static Table {
        match self {
            Self::Insert { table, .. }
            | Self::Update { table, .. }
            | Self::Delete { table, .. } => table,
        }
    }

    /// The change as one SQL statement on the tables of `schema`.
    pub fn statement(&self, schema: &str) -> Statement {
        let mut binds = Binds::default();
        let sql = match self {
            Self::Insert {
                table,
                values,
                replace,
            } => {
                let columns: Vec<&str> = values.iter().map(|(column, _)| *column).collect();
                let placeholders: Vec<String> = values
                    .iter()
                    .map(|(_, value)| binds.push(value.clone()))
                    .collect();
                let conflict = replace
                    .map(|replaced| {
                        let set: Vec<String> = replaced
                            .iter()
                            .map(|column| format!("{column} = excluded.{column}"))
                            .collect();
                        format!(
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            table.key.join(", "),
                            set.join(", ")
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "INSERT INTO {schema}.{} ({}) VALUES ({}){conflict}",
                    table.name,
                    columns.join(", "),
                    placeholders.join(", ")
                )
            }
            Self::Update { table, set, filter } => {
                let assignments: Vec<String> = set
                    .iter()
                    .map(|(column, assign)| match assign {
                        Assign::To(value) => format!("{column} = {}", binds.push(value.clone())),
                        // Portable max(): SQLite's two-argument max() is
                        // GREATEST() elsewhere.
                        Assign::AtLeast(value) => {
                            let at_least = binds.push(Some(value.clone()));
                            format!("{column} = CASE WHEN {column} < {at_least} THEN {at_least} ELSE {column} END")
                        }
                    })
                    .collect();
                let assignments = assignments.join(", ");
                format!(
                    "UPDATE {schema}.{} SET {assignments} WHERE {}",
                    table.name,
                    binds.filter(filter)
                )
            }
            Self::Delete { table, filter } => {
                format!(
                    "DELETE FROM {schema}.{} WHERE {}",
                    table.name,
                    binds.filter(filter)
                )
            }
        };
        binds
            .0
            .into_iter()
            .fold(Statement::new(sql), |statement, value| statement.opt(value))
    }
}

/// A statement's parameters, numbered as they are written.
#[derive(Default)]
struct Binds(Vec<Option<String>>);

impl Binds {
    fn push(&mut self, value: Option<String>) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }

    fn filter(&mut self, filter: &[(&str, String)]) -> String {
        filter
            .iter()
            .map(|(column, value)| format!("{column} = {}", self.push(Some(value.clone()))))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{GRANTS, INLINE_TABLES, USERNAMES};
    use crate::{Conn, Dialect, RowExt};

    /// The catalog the changes and the bulk replay use says what the DDL
    /// says: the same columns in the same order, the same key.
    #[tokio::test]
    async fn the_catalog_matches_the_tables_ddl() {
        use sqlx::Connection;
        let conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let mut conn = Conn::Sqlite(conn);
        conn.batch(&crate::schema::read_tables_ddl("main", Dialect::Sqlite))
            .await
            .unwrap();
        for table in INLINE_TABLES {
            let columns = conn
                .fetch_all(&Statement::new(format!(
                    "SELECT name, pk FROM pragma_table_info('{}') ORDER BY cid",
                    table.name
                )))
                .await
                .unwrap();
            let names: Vec<String> = columns.iter().filter_map(|c| c.text("name")).collect();
            assert_eq!(names, table.columns, "{}", table.name);
            let mut key: Vec<(i64, String)> = columns
                .iter()
                .filter(|c| c.int("pk").unwrap_or(0) > 0)
                .map(|c| (c.int("pk").unwrap_or(0), c.text("name").unwrap_or_default()))
                .collect();
            key.sort();
            let key: Vec<String> = key.into_iter().map(|(_, name)| name).collect();
            assert_eq!(key, table.key, "{}", table.name);
        }
        let tables: Vec<&str> = INLINE_TABLES.iter().map(|table| table.name).collect();
        let rebuildable = crate::schema::REBUILDABLE_TABLES;
        assert_eq!(tables, rebuildable[..rebuildable.len() - 1]);
    }

    #[test]
    fn changes_render_as_bound_sql() {
        let upsert = Change::Insert {
            table: &USERNAMES,
            values: vec![("account_id", Some("a".into())), ("sub", Some("s".into()))],
            replace: Some(&["sub"]),
        };
        let statement = upsert.statement("snap");
        assert_eq!(
            statement.sql,
            "INSERT INTO snap.usernames (account_id, sub) VALUES ($1, $2) ON CONFLICT (account_id) DO UPDATE SET sub = excluded.sub"
        );
        assert_eq!(statement.binds.len(), 2);

        let extend = Change::update(
            &GRANTS,
            vec![
                ("expires_at", Assign::AtLeast("t".into())),
                ("cursor", Assign::To(Some("c".into()))),
            ],
            vec![("gid", "g".into())],
        );
        assert_eq!(
            extend.statement("public").sql,
            "UPDATE public.grants SET expires_at = CASE WHEN expires_at < $1 THEN $1 ELSE expires_at END, cursor = $2 WHERE gid = $3"
        );

        let delete = Change::Delete {
            table: &USERNAMES,
            filter: vec![("account_id", "a".into()), ("sub", "s".into())],
        };
        assert_eq!(
            delete.statement("main").sql,
            "DELETE FROM main.usernames WHERE account_id = $1 AND sub = $2"
        );
    }
}
