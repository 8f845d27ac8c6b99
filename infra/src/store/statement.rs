//! Backend-neutral statements. Read-model code builds them as plain data —
//! SQL with `$1`-style placeholders, which both PostgreSQL and SQLite (via
//! sqlx) accept — and a [`super::Conn`] or [`super::Db`] executes them.
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

impl Statement {
    /// The statement with its parameters written in as literals, so that a
    /// replay can send a page's statements in one round trip instead of one
    /// each. Values keep the types their binds would have (`text`, `int8`
    /// on PostgreSQL). Text is quoted as an escape string (`E'…'`, quotes
    /// and backslashes doubled), which reads the same whatever
    /// `standard_conforming_strings` says; placeholders inside the SQL's
    /// own quoted literals are left alone.
    pub fn with_literals(&self, dialect: super::Dialect) -> String {
        let literal = |bind: &Bind| match (bind, dialect) {
            (Bind::Int(value), super::Dialect::Postgres) => format!("({value})::int8"),
            (Bind::Int(value), super::Dialect::Sqlite) => format!("({value})"),
            (Bind::Text(None), super::Dialect::Postgres) => "NULL::text".to_owned(),
            (Bind::Text(None), super::Dialect::Sqlite) => "NULL".to_owned(),
            (Bind::Text(Some(text)), super::Dialect::Postgres) => {
                format!(
                    "E'{}'::text",
                    text.replace('\\', "\\\\").replace('\'', "''")
                )
            }
            (Bind::Text(Some(text)), super::Dialect::Sqlite) => {
                format!("'{}'", text.replace('\'', "''"))
            }
        };
        let mut out = String::with_capacity(self.sql.len() + 64);
        let mut chars = self.sql.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            if c == '\'' {
                quoted = !quoted;
            }
            if c != '$' || quoted || !chars.peek().is_some_and(char::is_ascii_digit) {
                out.push(c);
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            match digits
                .parse::<usize>()
                .ok()
                .and_then(|n| self.binds.get(n.wrapping_sub(1)))
            {
                Some(bind) => out.push_str(&literal(bind)),
                None => {
                    out.push('$');
                    out.push_str(&digits);
                }
            }
        }
        out
    }
}

/// `$1, $2, …` for `count` parameters starting after `offset`.
pub fn placeholders(offset: usize, count: usize) -> String {
    (offset + 1..=offset + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Dialect;

    #[test]
    fn literals_keep_quotes_backslashes_and_dollars_inert() {
        let statement = Statement::new(
            "INSERT INTO t (a, b, c, d) VALUES ($1, $2, $10, json_extract(x, '$1.y')) -- $3",
        )
        .text("it's \\'; DROP TABLE t; --")
        .int(-7)
        .opt(None::<String>);
        let statement = (4..=10).fold(statement, |s, n| s.text(format!("v{n}")));
        assert_eq!(
            statement.with_literals(Dialect::Postgres),
            "INSERT INTO t (a, b, c, d) VALUES (E'it''s \\\\''; DROP TABLE t; --'::text, (-7)::int8, E'v10'::text, json_extract(x, '$1.y')) -- NULL::text"
        );
        assert_eq!(
            statement.with_literals(Dialect::Sqlite),
            "INSERT INTO t (a, b, c, d) VALUES ('it''s \\''; DROP TABLE t; --', (-7), 'v10', json_extract(x, '$1.y')) -- NULL"
        );
    }
}
