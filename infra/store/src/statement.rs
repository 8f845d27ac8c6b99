//! Backend-neutral statements. Read-model code builds them as plain data —
//! SQL with `$1`-style placeholders, which both PostgreSQL and SQLite (via
//! sqlx) accept — and a [`super::Conn`] or [`super::Db`] executes them,
//! always with their values bound: no value is ever written into SQL text.
//! Keeping the builders pure means the committer, the projector and the
//! rebuild share one definition of every row, whatever the database.

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    Int(i64),
    /// A PostgreSQL `text[]`, for statements whose shape must not depend on
    /// how many rows they carry (`unnest($1::text[], …)`). SQLite has no
    /// arrays: there it binds as the JSON array of the texts.
    Texts(Vec<Option<String>>),
}

impl Bind {
    /// How SQLite takes a [`Bind::Texts`]: its JSON array.
    pub fn texts_as_json(texts: &[Option<String>]) -> String {
        serde_json::Value::from(texts.to_vec()).to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    pub fn text(mut self, value: impl Into<String>) -> Self {
        self.binds.push(Bind::Text(Some(value.into())));
        self
    }

    pub fn opt(mut self, value: Option<impl Into<String>>) -> Self {
        self.binds.push(Bind::Text(value.map(Into::into)));
        self
    }

    pub fn int(mut self, value: i64) -> Self {
        self.binds.push(Bind::Int(value));
        self
    }

    pub fn texts(mut self, values: Vec<Option<String>>) -> Self {
        self.binds.push(Bind::Texts(values));
        self
    }

    /// `rows`, each `width` texts wide, bound as one `text[]` per column:
    /// what `unnest($1::text[], …)` takes apart into the rows again.
    pub fn columns(self, rows: Vec<Vec<Option<String>>>, width: usize) -> Self {
        let mut columns: Vec<Vec<Option<String>>> =
            (0..width).map(|_| Vec::with_capacity(rows.len())).collect();
        for row in rows {
            debug_assert_eq!(row.len(), width, "a row as wide as its columns");
            for (column, value) in columns.iter_mut().zip(row) {
                column.push(value);
            }
        }
        columns.into_iter().fold(self, Self::texts)
    }
}

/// `($1, $2), ($3, $4), …`: `rows` rows of `width` parameters each.
pub fn value_rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(row * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many of `remaining` rows (at least one) the next multi-row statement
/// takes: the largest power of two up to `most`, so that a few statement
/// shapes cover every count and stay in a connection's statement cache.
pub fn power_of_two_rows(remaining: usize, most: usize) -> usize {
    1 << remaining.min(most).ilog2()
}

/// `$1, $2, …` for `count` parameters starting after `offset`.
pub fn placeholders(offset: usize, count: usize) -> String {
    (offset + 1..=offset + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
