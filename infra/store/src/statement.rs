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
}

/// `$1, $2, …` for `count` parameters starting after `offset`.
pub fn placeholders(offset: usize, count: usize) -> String {
    (offset + 1..=offset + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
