//! The read model, one module per view. Every statement that names a read
//! table — what the APIs, the CLI, the projector and the key store read,
//! and the side writes of the committer — is written here, beside the
//! table's description, its row struct and its status enum. A renamed
//! column is changed in one file; a caller that used it no longer compiles.
//! The rows' writes from events are [`super::inline`]'s, in terms of the
//! tables described here.

pub mod accounts;
pub mod clients;
pub mod consents;
pub mod grants;
pub mod keys;
pub mod sessions;
pub mod tokens;

pub use accounts::{ACCOUNTS, USERNAMES};
pub use clients::CLIENTS;
pub use consents::CONSENTS;
pub use grants::GRANTS;
pub use keys::SIGNING_KEYS;
pub use sessions::SESSIONS;
pub use tokens::TOKENS;

use super::statement::Statement;
use super::Dialect;

/// A read table as the changes see it: its columns in table order and the
/// columns that make its primary key. Changes filter either on the whole
/// key or on one of `lookups` (then the other filter columns narrow it).
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub key: &'static [&'static str],
    pub lookups: &'static [&'static str],
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| *column == name)
    }
}

/// A read table's description and its columns as constants, one module
/// per table (`grant::status`). The inline writers name columns through
/// these, so a column renamed here no longer compiles where it was used.
macro_rules! table {
    (
        $(#[$doc:meta])*
        $table:ident = $name:literal, columns $columns:ident {
            $($column:ident),+ $(,)?
        }
        key [$($key:ident),+]
        lookups [$($lookup:ident),*]
    ) => {
        #[allow(non_upper_case_globals)]
        pub mod $columns {
            $(pub const $column: &str = stringify!($column);)+
        }

        $(#[$doc])*
        pub const $table: $crate::views::Table = $crate::views::Table {
            name: $name,
            columns: &[$($columns::$column),+],
            key: &[$($columns::$key),+],
            lookups: &[$($columns::$lookup),*],
        };
    };
}
pub(crate) use table;

/// Every table an event changes inline, in [`super::schema::REBUILDABLE_TABLES`] order.
pub const INLINE_TABLES: &[&Table] = &[
    &CLIENTS,
    &ACCOUNTS,
    &USERNAMES,
    &CONSENTS,
    &GRANTS,
    &TOKENS,
    &SIGNING_KEYS,
    &SESSIONS,
];

/// A status column as an enum, stored as the given text. A text the enum
/// does not know (a row written by a newer Writ, or by hand) reads as
/// `Unrecognised`, which is never any live status: the row counts as not
/// active, as a text comparison would have it, instead of failing the
/// query and every row beside it.
macro_rules! status {
    ($(#[$doc:meta])* $name:ident { $($(#[$variant_doc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
            /// A text this Writ does not write.
            Unrecognised,
        }

        impl $name {
            /// The stored text; `Unrecognised` is never stored by Writ.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unrecognised => "unrecognised",
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Unrecognised,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use status;

/// Indexes the events at `positions` of `{log}.events` into
/// `{schema}.audit_index`, one `INSERT … SELECT`: no payload crosses the
/// wire and none is parsed by Writ, which is what lets catch-up run near
/// the machine's bulk-insert rate. The one statement here that spans two
/// views, so it sits beside their descriptions. By position, not by a `(txid, position)` range:
/// a row-comparison range is an index bound on `txid` alone, so inside one
/// large transaction it would scan from the transaction's first event.
/// Client and subject come from the event where it names them (the payload is `{"<event type>": {…}}`); later grant and
/// session events do not repeat them, so those come from the inline
/// `grants` and `sessions` rows in the same schema (a rebuild reads its
/// own, written before this statement runs).
pub fn audit_index_rows(dialect: Dialect, schema: &str, log: &str, positions: &[i64]) -> Statement {
    let (selected, positions) = event_at_positions(dialect, positions);
    let (cursor, recorded_at, actor, field) = match dialect {
        Dialect::Postgres => (
            "lpad(e.txid::text, 20, '0') || '-' || lpad(e.position::text, 20, '0')",
            "to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            "e.metadata ->> 'actor'",
            "(e.payload -> e.event_type ->> '{}')",
        ),
        Dialect::Sqlite => (
            "printf('%020d', e.position)",
            "e.recorded_at",
            "json_extract(e.metadata, '$.actor')",
            "json_extract(e.payload, '$.' || e.event_type || '.{}')",
        ),
    };
    let sub = field.replace("{}", "sub");
    let client_id = field.replace("{}", "client_id");
    let sql = format!(
        "INSERT INTO {schema}.audit_index (position, cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject)
         SELECT e.position, {cursor}, {recorded_at}, e.aggregate_type, e.aggregate_id, e.event_type, {actor},
                coalesce(CASE e.aggregate_type WHEN 'Client' THEN e.aggregate_id WHEN 'Consent' THEN {client_id} WHEN 'PushedRequest' THEN {client_id} WHEN 'ClientAssertion' THEN {client_id} WHEN 'DpopProof' THEN {client_id} END, g.client_id),
                coalesce(CASE WHEN e.aggregate_type IN ('Account', 'LoginDay', 'Consent', 'Session') THEN {sub} END, g.sub, s.sub)
         FROM {log}.events e
         LEFT JOIN {schema}.grants g ON e.aggregate_type = 'Grant' AND g.gid = e.aggregate_id
         LEFT JOIN {schema}.sessions s ON e.aggregate_type = 'Session' AND s.sid = e.aggregate_id
         WHERE {selected}"
    );
    Statement::new(sql).text(positions)
}

/// The events after which a grant has a subject it did not start with.
pub const SUBJECT_ARRIVES: &[&str] = &["DeviceAuthorizationApproved", "DeviceAuthorizationDenied"];

/// Names the subject in the audit rows of the grants among `positions`
/// (every grant, when `None`) that were indexed before the grant had one:
/// a device grant learns its person when they approve. So a grant's rows
/// all name its subject however the log was sliced when they were indexed,
/// and the live index and a replay agree.
pub fn audit_subject_backfill(
    dialect: Dialect,
    schema: &str,
    log: &str,
    positions: Option<&[i64]>,
) -> Statement {
    let (grants, listed) = match positions {
        None => (String::new(), None),
        Some(positions) => {
            let (selected, listed) = event_at_positions(dialect, positions);
            let grants = format!(
                "AND aggregate_id IN (SELECT e.aggregate_id FROM {log}.events e \
                 WHERE e.aggregate_type = 'Grant' AND {selected})"
            );
            (grants, Some(listed))
        }
    };
    let sql = format!(
        "UPDATE {schema}.audit_index \
         SET subject = (SELECT g.sub FROM {schema}.grants g WHERE g.gid = audit_index.aggregate_id) \
         WHERE aggregate_type = 'Grant' AND subject IS NULL {grants} \
         AND EXISTS (SELECT 1 FROM {schema}.grants g WHERE g.gid = audit_index.aggregate_id AND g.sub IS NOT NULL)"
    );
    match listed {
        None => Statement::new(sql),
        Some(listed) => Statement::new(sql).text(listed),
    }
}

/// `e.position` among `positions`, bound as `$1`: one text parameter in
/// the dialect's array syntax, so a slice of any length is one statement
/// with one bind (an `IN (…)` list would be a new statement per length).
fn event_at_positions(dialect: Dialect, positions: &[i64]) -> (&'static str, String) {
    let listed = positions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    match dialect {
        Dialect::Postgres => (
            "e.position = ANY($1::text::bigint[])",
            format!("{{{listed}}}"),
        ),
        Dialect::Sqlite => (
            "e.position IN (SELECT value FROM json_each($1))",
            format!("[{listed}]"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::grants::GrantStatus;
    use super::tokens::TokenStatus;

    #[test]
    fn statuses_read_back_what_they_write_and_nothing_else_reads_as_a_status() {
        for status in [
            GrantStatus::Pending,
            GrantStatus::Active,
            GrantStatus::Revoked,
        ] {
            assert_eq!(GrantStatus::from(status.as_str().to_owned()), status);
        }
        assert_eq!(TokenStatus::Spent.as_str(), "spent");
        assert_eq!(
            TokenStatus::from("paused".to_owned()),
            TokenStatus::Unrecognised
        );
    }
}
