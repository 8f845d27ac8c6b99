//! Many events' inline [`Change`]s as few statements. Plain inserts into a
//! table with the same columns become one multi-row insert, and an update
//! of a row that such an insert still holds, named by its whole key, is
//! applied to the held row instead of being sent. Everything else is sent
//! as it is, after the held inserts into its table.
//!
//! Why: every statement is a round trip on PostgreSQL and a bind, step and
//! reset on SQLite, and a client-credentials issuance was three of them
//! (the grant, its token, the grant's expiry moved to the token's).
//!
//! Why it means the same as the changes one by one: changes to different
//! tables commute (the inline tables have no triggers and no foreign keys);
//! an update, delete or upsert of a table is sent only after every insert
//! into it that came first; and an update absorbed by a held row selects
//! exactly that row, since no other can have its key.

use std::collections::HashMap;

use super::change::{Assign, Change};
use super::conn::Dialect;
use super::fold::key_of;
use super::statement::{power_of_two_rows, value_rows, Statement};
use super::views::Table;

/// Most rows per insert on SQLite: powers of two up to this, so that each
/// column list takes at most five shapes in the connection's statement
/// cache. A token row has up to eight column lists (audience, status list
/// and DPoP key are each optional), so a mixed load can still outgrow
/// SQLite's cache of 64 (not measured). PostgreSQL takes every row in one
/// insert of arrays.
const SQLITE_MOST_ROWS: usize = 16;

/// Inserts waiting to be sent, into one table with one list of columns.
struct Held {
    table: &'static Table,
    columns: Vec<&'static str>,
    rows: Vec<Vec<Option<String>>>,
    /// Row index by the row's key (its key columns joined by NUL).
    by_key: HashMap<String, usize>,
}

impl Held {
    fn push(&mut self, row: Vec<Option<String>>) {
        let columns = &self.columns;
        let key = key_of(self.table, |name| {
            let at = columns.iter().position(|column| *column == name)?;
            row[at].as_deref()
        });
        if let Ok(key) = key {
            self.by_key.insert(key.into_owned(), self.rows.len());
        }
        self.rows.push(row);
    }

    /// Applies the update to the held row it names by key, if there is one
    /// and the update only sets columns the insert writes, none of the key.
    fn absorb(
        &mut self,
        set: &[(&'static str, Assign)],
        filter: &[(&'static str, String)],
    ) -> bool {
        let by_whole_key = filter.len() == self.table.key.len()
            && self
                .table
                .key
                .iter()
                .all(|column| filter.iter().any(|(name, _)| name == column));
        if !by_whole_key {
            return false;
        }
        let Ok(key) = key_of(self.table, |name| {
            let (_, value) = filter.iter().find(|(column, _)| *column == name)?;
            Some(value.as_str())
        }) else {
            return false;
        };
        let Some(&at) = self.by_key.get(key.as_ref()) else {
            return false;
        };
        let mut places = Vec::with_capacity(set.len());
        for (column, _) in set {
            match self.columns.iter().position(|held| held == column) {
                Some(place) if !self.table.key.contains(column) => places.push(place),
                _ => return false,
            }
        }
        let row = &mut self.rows[at];
        for (place, (_, assign)) in places.into_iter().zip(set) {
            assign.clone().apply(&mut row[place]);
        }
        true
    }

    fn send(self, schema: &str, dialect: Dialect, out: &mut Vec<Statement>) {
        let columns = self.columns.join(", ");
        let width = self.columns.len();
        if dialect == Dialect::Postgres {
            // One array per column: one statement, and one statement shape,
            // whatever the number of rows. The inline tables are all text.
            let arrays = (1..=width)
                .map(|n| format!("${n}::text[]"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO {schema}.{} ({columns}) SELECT * FROM unnest({arrays})",
                self.table.name
            );
            out.push(Statement::new(sql).columns(self.rows, width));
            return;
        }
        let mut rows = self.rows.into_iter();
        let mut remaining = rows.len();
        while remaining > 0 {
            let take = power_of_two_rows(remaining, SQLITE_MOST_ROWS);
            remaining -= take;
            let sql = format!(
                "INSERT INTO {schema}.{} ({columns}) VALUES {}",
                self.table.name,
                value_rows(take, width)
            );
            let statement = rows
                .by_ref()
                .take(take)
                .flatten()
                .fold(Statement::new(sql), |statement, value| statement.opt(value));
            out.push(statement);
        }
    }
}

/// The statements that make the changes, in their order, on the tables of
/// `schema`.
pub fn statements(
    schema: &str,
    dialect: Dialect,
    changes: impl IntoIterator<Item = Change>,
) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut held: Vec<Held> = Vec::new();
    for change in changes {
        match change {
            Change::Insert {
                table,
                values,
                replace: None,
            } => {
                let columns: Vec<&'static str> = values.iter().map(|(column, _)| *column).collect();
                let row = values.into_iter().map(|(_, value)| value).collect();
                let same = held
                    .iter_mut()
                    .find(|h| h.table.name == table.name && h.columns == columns);
                match same {
                    Some(same) => same.push(row),
                    None => {
                        let mut fresh = Held {
                            table,
                            columns,
                            rows: Vec::new(),
                            by_key: HashMap::new(),
                        };
                        fresh.push(row);
                        held.push(fresh);
                    }
                }
            }
            Change::Update {
                table,
                ref set,
                ref filter,
            } if held
                .iter_mut()
                .any(|h| h.table.name == table.name && h.absorb(set, filter)) => {}
            other => {
                let table = other.table().name;
                let (first, rest): (Vec<Held>, Vec<Held>) =
                    held.into_iter().partition(|h| h.table.name == table);
                held = rest;
                for inserts in first {
                    inserts.send(schema, dialect, &mut out);
                }
                out.push(other.statement(schema));
            }
        }
    }
    for inserts in held {
        inserts.send(schema, dialect, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;
