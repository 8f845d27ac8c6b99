//! The inline read tables held in memory: a bulk replay applies every
//! event's [`Change`]s here, with the meaning their SQL has, then loads the
//! final rows with COPY instead of sending two statements per event.

use super::change::{Assign, Change};
use super::views::{Table, INLINE_TABLES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FoldError {
    #[error("{table}: a second row with key {key:?}")]
    Duplicate { table: &'static str, key: String },
    #[error("{table}: no column {column}")]
    NoColumn { table: &'static str, column: String },
    #[error("{table}: key column {column} is null")]
    NullKey {
        table: &'static str,
        column: &'static str,
    },
    /// A change the in-memory tables cannot carry out as the SQL would: a
    /// filter that is neither the key nor a lookup, or an update of either.
    #[error("{table}: {what}")]
    Unsupported { table: &'static str, what: String },
}

type Row = Box<[Option<String>]>;
/// Fx hashing: the keys are gids, hashes and ids from the log, replayed
/// offline, and SipHash's flood resistance cost a tenth of the fold.
type Map<V> = rustc_hash::FxHashMap<String, V>;

/// One table: rows in insertion order (a deleted row leaves a hole), found
/// by key and by each lookup column.
struct Rows {
    table: &'static Table,
    rows: Vec<Option<Row>>,
    by_key: Map<usize>,
    by_lookup: Vec<Map<Vec<usize>>>,
}

/// The key of a row or filter: the one key value, or the values joined by
/// NUL (which PostgreSQL text cannot hold) for a composite key.
pub(crate) fn key_of<'a>(
    table: &'static Table,
    value: impl Fn(&str) -> Option<&'a str>,
) -> Result<std::borrow::Cow<'a, str>, FoldError> {
    let part = |column: &'static str| {
        value(column).ok_or(FoldError::NullKey {
            table: table.name,
            column,
        })
    };
    if let [only] = table.key {
        return part(only).map(std::borrow::Cow::Borrowed);
    }
    let mut key = String::new();
    for (index, column) in table.key.iter().enumerate() {
        if index > 0 {
            key.push('\0');
        }
        key.push_str(part(column)?);
    }
    Ok(std::borrow::Cow::Owned(key))
}

/// The rows a filter may select, before its other columns are checked:
/// the one with its key, or those with its lookup column's value.
fn candidates<'a>(
    table: &'static Table,
    by_key: &'a Map<usize>,
    by_lookup: &'a [Map<Vec<usize>>],
    filter: &[(&'static str, String)],
) -> Result<&'a [usize], FoldError> {
    let filtered = |column: &str| {
        filter
            .iter()
            .find(|(name, _)| *name == column)
            .map(|(_, value)| value.as_str())
    };
    if let Ok(key) = key_of(table, filtered) {
        return Ok(by_key
            .get(key.as_ref())
            .map(std::slice::from_ref)
            .unwrap_or_default());
    }
    for (lookup, column) in table.lookups.iter().enumerate() {
        if let Some(value) = filtered(column) {
            return Ok(by_lookup[lookup]
                .get(value)
                .map(Vec::as_slice)
                .unwrap_or_default());
        }
    }
    Err(FoldError::Unsupported {
        table: table.name,
        what: "a filter on neither the key nor a lookup column".to_owned(),
    })
}

impl Rows {
    fn new(table: &'static Table) -> Self {
        Self {
            table,
            rows: Vec::new(),
            by_key: Map::default(),
            by_lookup: table.lookups.iter().map(|_| Map::default()).collect(),
        }
    }

    /// Whether these are `table`'s rows. Every copy of a catalogue
    /// constant points at the one name, so a match is found by address
    /// without comparing text once per change.
    fn holds(&self, table: &Table) -> bool {
        std::ptr::eq(self.table.name, table.name) || self.table.name == table.name
    }

    fn column(&self, name: &str) -> Result<usize, FoldError> {
        self.table.column(name).ok_or_else(|| FoldError::NoColumn {
            table: self.table.name,
            column: name.to_owned(),
        })
    }

    /// [`Self::column`], looking first where `name` usually is: inserts
    /// list their values in table order, and a search compares the name
    /// with every column before it.
    fn column_near(&self, name: &str, usually: usize) -> Result<usize, FoldError> {
        match self.table.columns.get(usually) {
            Some(column) if *column == name => Ok(usually),
            _ => self.column(name),
        }
    }

    fn insert(
        &mut self,
        values: Vec<(&'static str, Option<String>)>,
        replace: Option<&[&str]>,
    ) -> Result<(), FoldError> {
        let mut row: Row = vec![None; self.table.columns.len()].into_boxed_slice();
        for (at, (column, value)) in values.into_iter().enumerate() {
            row[self.column_near(column, at)?] = value;
        }
        let table = self.table;
        let key = key_of(table, |column| {
            table.column(column).and_then(|index| row[index].as_deref())
        })?
        .into_owned();
        if let Some(&existing) = self.by_key.get(&key) {
            let Some(replaced) = replace else {
                return Err(FoldError::Duplicate {
                    table: table.name,
                    key,
                });
            };
            for column in replaced {
                let index = self.column(column)?;
                self.check_assignable(column)?;
                if let Some(old) = self.rows[existing].as_mut() {
                    old[index] = row[index].take();
                }
            }
            return Ok(());
        }
        let at = self.rows.len();
        for (lookup, column) in table.lookups.iter().enumerate() {
            if let Some(value) = &row[self.column(column)?] {
                self.by_lookup[lookup]
                    .entry(value.clone())
                    .or_default()
                    .push(at);
            }
        }
        self.rows.push(Some(row));
        self.by_key.insert(key, at);
        Ok(())
    }

    fn check_assignable(&self, column: &str) -> Result<(), FoldError> {
        if self.table.key.contains(&column) || self.table.lookups.contains(&column) {
            return Err(FoldError::Unsupported {
                table: self.table.name,
                what: format!("an update of the key or lookup column {column}"),
            });
        }
        Ok(())
    }

    /// Whether a row has every filter column's value, as SQL's
    /// `WHERE a = x AND b = y` would (a null matches nothing).
    fn matches(table: &Table, row: &[Option<String>], filter: &[(&'static str, String)]) -> bool {
        filter.iter().all(|(column, value)| {
            table
                .column(column)
                .is_some_and(|index| row[index].as_deref() == Some(value.as_str()))
        })
    }

    fn check_filter(&self, filter: &[(&'static str, String)]) -> Result<(), FoldError> {
        filter
            .iter()
            .try_for_each(|(column, _)| self.column(column).map(drop))
    }

    fn update(
        &mut self,
        set: Vec<(&'static str, Assign)>,
        filter: &[(&'static str, String)],
    ) -> Result<(), FoldError> {
        let mut assignments = Vec::with_capacity(set.len());
        for (column, assign) in set {
            self.check_assignable(column)?;
            assignments.push((self.column(column)?, assign));
        }
        self.check_filter(filter)?;
        let table = self.table;
        let found = candidates(table, &self.by_key, &self.by_lookup, filter)?;
        let last = found.len().saturating_sub(1);
        for (nth, &at) in found.iter().enumerate() {
            let Some(row) = self.rows[at].as_mut() else {
                continue;
            };
            if !Self::matches(table, row, filter) {
                continue;
            }
            // The last candidate may take the values; the others copy them.
            let take = nth == last;
            for (index, assign) in &mut assignments {
                let assign = if take {
                    std::mem::replace(assign, Assign::To(None))
                } else {
                    assign.clone()
                };
                assign.apply(&mut row[*index]);
            }
        }
        Ok(())
    }

    fn delete(&mut self, filter: &[(&'static str, String)]) -> Result<(), FoldError> {
        self.check_filter(filter)?;
        let table = self.table;
        let found = candidates(table, &self.by_key, &self.by_lookup, filter)?.to_vec();
        for at in found {
            let Some(row) = self.rows[at].take_if(|row| Self::matches(table, row, filter)) else {
                continue;
            };
            let key = key_of(table, |column| {
                table.column(column).and_then(|index| row[index].as_deref())
            })?;
            self.by_key.remove(key.as_ref());
            for (lookup, column) in table.lookups.iter().enumerate() {
                if let Some(value) = &row[self.column(column)?] {
                    if let Some(rows) = self.by_lookup[lookup].get_mut(value) {
                        rows.retain(|&other| other != at);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Every inline table, empty at first.
pub struct Tables {
    tables: Vec<Rows>,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            tables: INLINE_TABLES.iter().map(|table| Rows::new(table)).collect(),
        }
    }
}

impl Tables {
    fn rows(&mut self, table: &'static Table) -> Result<&mut Rows, FoldError> {
        self.tables
            .iter_mut()
            .find(|rows| rows.holds(table))
            .ok_or(FoldError::Unsupported {
                table: table.name,
                what: "not an inline table".to_owned(),
            })
    }

    pub fn apply(&mut self, change: Change) -> Result<(), FoldError> {
        match change {
            Change::Insert {
                table,
                values,
                replace,
            } => self.rows(table)?.insert(values, replace),
            Change::Update { table, set, filter } => self.rows(table)?.update(set, &filter),
            Change::Delete { table, filter } => self.rows(table)?.delete(&filter),
        }
    }

    /// One column of the row with a single-column key, as a `LEFT JOIN` on
    /// the key would find it.
    pub fn value(&self, table: &'static Table, key: &str, column: &str) -> Option<&str> {
        let rows = self.tables.iter().find(|rows| rows.holds(table))?;
        let index = table.column(column)?;
        let at = *rows.by_key.get(key)?;
        rows.rows[at].as_ref()?[index].as_deref()
    }

    /// The live rows of `table` in insertion order.
    pub fn rows_of(&self, table: &'static Table) -> impl Iterator<Item = &[Option<String>]> {
        self.tables
            .iter()
            .filter(move |rows| rows.holds(table))
            .flat_map(|rows| rows.rows.iter().flatten().map(|row| &row[..]))
    }
}

/// One row in COPY's text format: tab-separated, `\N` for null, with
/// backslash, tab, newline and carriage return escaped.
pub fn copy_line<'a>(values: impl IntoIterator<Item = Option<&'a str>>, out: &mut Vec<u8>) {
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            out.push(b'\t');
        }
        let Some(value) = value else {
            out.extend_from_slice(b"\\N");
            continue;
        };
        let bytes = value.as_bytes();
        // Without a branch per byte the scan vectorises; values to escape
        // are rare (none of ids, hashes and times is one).
        let reserved = bytes.iter().fold(false, |found, &byte| {
            found | (byte < 0x20) | (byte == b'\\')
        });
        if !reserved {
            out.extend_from_slice(bytes);
            continue;
        }
        let mut plain = 0;
        for (at, byte) in bytes.iter().enumerate() {
            let escaped: &[u8] = match byte {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            out.extend_from_slice(&bytes[plain..at]);
            out.extend_from_slice(escaped);
            plain = at + 1;
        }
        out.extend_from_slice(&bytes[plain..]);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{TOKENS, USERNAMES};

    fn token(key: &str, gid: &str, kind: &str) -> Change {
        Change::insert(
            &TOKENS,
            vec![
                ("token_key", Some(key.into())),
                ("kind", Some(kind.into())),
                ("gid", Some(gid.into())),
                ("status", Some("active".into())),
            ],
        )
    }

    fn status_of(tables: &Tables, key: &str) -> Option<String> {
        tables.value(&TOKENS, key, "status").map(str::to_owned)
    }

    #[test]
    fn updates_select_rows_by_key_or_by_lookup_and_every_filter_column() {
        let mut tables = Tables::default();
        for change in [
            token("a", "g1", "code"),
            token("b", "g1", "access"),
            token("c", "g2", "code"),
        ] {
            tables.apply(change).unwrap();
        }
        let spend = Change::update(
            &TOKENS,
            vec![("status", Assign::To(Some("spent".into())))],
            vec![("gid", "g1".into()), ("kind", "code".into())],
        );
        tables.apply(spend).unwrap();
        assert_eq!(status_of(&tables, "a").as_deref(), Some("spent"));
        assert_eq!(status_of(&tables, "b").as_deref(), Some("active"));
        assert_eq!(status_of(&tables, "c").as_deref(), Some("active"));

        let rotate = Change::update(
            &TOKENS,
            vec![("status", Assign::To(Some("rotated".into())))],
            vec![("token_key", "c".into())],
        );
        tables.apply(rotate).unwrap();
        assert_eq!(status_of(&tables, "c").as_deref(), Some("rotated"));
        assert_eq!(
            tables.apply(token("c", "g3", "code")),
            Err(FoldError::Duplicate {
                table: "tokens",
                key: "c".into()
            })
        );
    }

    #[test]
    fn at_least_keeps_the_later_time() {
        let mut tables = Tables::default();
        tables
            .apply(Change::insert(
                &TOKENS,
                vec![
                    ("token_key", Some("a".into())),
                    ("gid", Some("g".into())),
                    ("expires_at", Some("2026-01-02".into())),
                ],
            ))
            .unwrap();
        for (offered, kept) in [("2026-01-01", "2026-01-02"), ("2026-01-03", "2026-01-03")] {
            let extend = Change::update(
                &TOKENS,
                vec![("expires_at", Assign::AtLeast(offered.into()))],
                vec![("token_key", "a".into())],
            );
            tables.apply(extend).unwrap();
            assert_eq!(tables.value(&TOKENS, "a", "expires_at"), Some(kept));
        }
    }

    #[test]
    fn upserts_replace_only_their_columns_and_deletes_free_the_key() {
        let mut tables = Tables::default();
        let upsert = |sub: &str| Change::Insert {
            table: &USERNAMES,
            values: vec![
                ("account_id", Some("acct".into())),
                ("sub", Some(sub.into())),
            ],
            replace: Some(&["sub"]),
        };
        tables.apply(upsert("s1")).unwrap();
        tables.apply(upsert("s2")).unwrap();
        assert_eq!(tables.value(&USERNAMES, "acct", "sub"), Some("s2"));
        assert_eq!(tables.rows_of(&USERNAMES).count(), 1);
        let forget = |sub: &str| Change::Delete {
            table: &USERNAMES,
            filter: vec![("account_id", "acct".into()), ("sub", sub.into())],
        };
        tables.apply(forget("s1")).unwrap();
        assert_eq!(
            tables.rows_of(&USERNAMES).count(),
            1,
            "a delete whose filter does not match"
        );
        tables.apply(forget("s2")).unwrap();
        assert_eq!(tables.rows_of(&USERNAMES).count(), 0);
        tables.apply(upsert("s3")).unwrap();
        assert_eq!(tables.value(&USERNAMES, "acct", "sub"), Some("s3"));
    }

    #[test]
    fn changes_the_sql_would_not_mean_the_same_are_refused() {
        let mut tables = Tables::default();
        let by_scopes = Change::update(
            &TOKENS,
            vec![("status", Assign::To(None))],
            vec![("scopes", "x".into())],
        );
        assert!(matches!(
            tables.apply(by_scopes),
            Err(FoldError::Unsupported { .. })
        ));
        let rekey = Change::update(
            &TOKENS,
            vec![("gid", Assign::To(Some("other".into())))],
            vec![("token_key", "a".into())],
        );
        assert!(matches!(
            tables.apply(rekey),
            Err(FoldError::Unsupported { .. })
        ));
    }

    #[test]
    fn copy_lines_escape_what_the_text_format_reserves() {
        let mut out = Vec::new();
        copy_line([Some("a\tb\\c\nd\re"), None, Some("")], &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re\t\\N\t\n");
    }
}
