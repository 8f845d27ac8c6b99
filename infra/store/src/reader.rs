//! Reading the log in global order: whole events, or only their headers
//! for projections that decide from the type which payloads to read.

use super::conn::{Dialect, RowExt};
use super::statement::{placeholders, Statement};
use super::{event_columns, log_order, Store, StoredEvent};
use writ_domain::cursor::Cursor;

/// An event without its payload, metadata and hash. Decoded by sqlx
/// straight from the row: the projector reads a slice of these after every
/// batch, and going through a JSON map per row cost the request threads
/// about 5 % of their time under issuance.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventHeader {
    pub txid: i64,
    pub position: i64,
    pub recorded_at: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub event_version: String,
}

impl EventHeader {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            txid: self.txid,
            position: self.position,
        }
    }
}

fn header_columns(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "0 AS txid, position, recorded_at, aggregate_type, aggregate_id, event_type, event_version"
        }
        Dialect::Postgres => {
            "txid::text::bigint AS txid, position, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at, \
             aggregate_type, aggregate_id, event_type, event_version"
        }
    }
}

/// `columns` of the events after `after`, at most `limit`, in global order
/// and below PostgreSQL's global-order bound.
fn after_bound(dialect: Dialect, columns: &str, after: Cursor, limit: i64) -> Statement {
    after_cursor(dialect, columns, after, limit, true)
}

/// `columns` of the events after `after`, at most `limit`, in global order,
/// by keyset (each page costs the same however deep in the log). With
/// `bounded`, only below PostgreSQL's global-order bound, where no later
/// commit can land; without, everything the snapshot sees (a replay or a
/// verification inside one snapshot).
pub fn after_cursor(
    dialect: Dialect,
    columns: &str,
    after: Cursor,
    limit: i64,
    bounded: bool,
) -> Statement {
    match dialect {
        Dialect::Sqlite => Statement::new(format!(
            "SELECT {columns} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .int(after.position)
        .int(limit),
        Dialect::Postgres => Statement::new(format!(
            "SELECT {columns} FROM events
             WHERE (txid, position) > ($1::text::xid8, $2){}
             ORDER BY events.txid, events.position LIMIT $3",
            if bounded {
                " AND txid < pg_snapshot_xmin(pg_current_snapshot())"
            } else {
                ""
            }
        ))
        .text(after.txid.to_string())
        .int(after.position)
        .int(limit),
    }
}

/// Whether any event waits above the global-order bound: whether the newest
/// transaction's is. Asked as "any event at or above the bound", PostgreSQL
/// guessed a third of the log matched and scanned all of it for the first,
/// on every idle turn of the projector: 17 ms at 30,000 events.
pub(crate) const WAITING_ABOVE_THE_BOUND: &str =
    "SELECT count(*) FROM (SELECT txid FROM events ORDER BY txid DESC LIMIT 1) AS newest \
     WHERE newest.txid >= pg_snapshot_xmin(pg_current_snapshot())";

impl Store {
    async fn fetch_events(&self, statement: &Statement) -> Result<Vec<StoredEvent>, sqlx::Error> {
        self.db()
            .fetch_all(statement)
            .await?
            .iter()
            .map(StoredEvent::from_row)
            .collect()
    }

    /// Events after `after` in global order, at most `limit`. On PostgreSQL
    /// only transactions below the oldest one still running are read, so a
    /// late commit with a lower transaction id is never skipped (ADR 0002).
    pub async fn events_after(
        &self,
        after: Cursor,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let statement = after_bound(self.dialect(), event_columns(self.dialect()), after, limit);
        self.fetch_events(&statement).await
    }

    /// The same slice of the log as [`Store::events_after`] without
    /// payloads, metadata or hashes: what a projection needs to decide
    /// which events it must read in full (most need none).
    pub async fn headers_after(
        &self,
        after: Cursor,
        limit: i64,
    ) -> Result<Vec<EventHeader>, sqlx::Error> {
        let statement = after_bound(self.dialect(), header_columns(self.dialect()), after, limit);
        self.db().fetch_rows(&statement).await
    }

    /// The events of one aggregate type committed after `after`, at most
    /// `limit`, and the cursor the read reached: a reader that follows few
    /// streams among many (the back-channel logout deliverer) has the
    /// database skip the rest instead of decoding every header. The reach
    /// is the log's head read first (on PostgreSQL below its global-order
    /// bound), so nothing committed at or before it is missed.
    pub async fn events_of_type_after(
        &self,
        after: Cursor,
        aggregate_type: &str,
        limit: i64,
    ) -> Result<(Vec<StoredEvent>, Cursor), sqlx::Error> {
        let reach = self.readable_head().await?;
        self.events_where_between(after, reach, "aggregate_type", &[aggregate_type], limit)
            .await
    }

    /// [`Store::events_of_type_after`] for events of any of these event
    /// types (the Shared Signals transmitter's sources).
    pub async fn events_of_kinds_after(
        &self,
        after: Cursor,
        event_types: &[&str],
        limit: i64,
    ) -> Result<(Vec<StoredEvent>, Cursor), sqlx::Error> {
        let reach = self.readable_head().await?;
        self.events_where_between(after, reach, "event_type", event_types, limit)
            .await
    }

    /// Every event of these types this moment's snapshot sees, from
    /// `after`, at most `limit`: for a point-in-time answer (the streams a
    /// Shared Signals receiver holds), not for a reader that follows the
    /// log. It is not held back by PostgreSQL's global-order bound, which
    /// any open transaction in the cluster can hold below a write the
    /// caller has just had acknowledged.
    pub async fn events_of_kinds_seen(
        &self,
        after: Cursor,
        event_types: &[&str],
        limit: i64,
    ) -> Result<(Vec<StoredEvent>, Cursor), sqlx::Error> {
        let reach = self.head().await?;
        self.events_where_between(after, reach, "event_type", event_types, limit)
            .await
    }

    /// The cursor of the one row `statement` reads, or the start.
    async fn cursor_of(&self, statement: &Statement) -> Result<Cursor, sqlx::Error> {
        Ok(self
            .db()
            .fetch_all(statement)
            .await?
            .first()
            .map(|row| Cursor {
                txid: row.int("txid").unwrap_or(0),
                position: row.int("position").unwrap_or(0),
            })
            .unwrap_or(crate::START))
    }

    /// The last event this moment's snapshot sees, committed in any order.
    async fn head(&self) -> Result<Cursor, sqlx::Error> {
        let head = Statement::new(match self.dialect() {
            Dialect::Sqlite => {
                "SELECT 0 AS txid, coalesce(max(position), 0) AS position FROM events"
            }
            Dialect::Postgres => {
                "SELECT txid::text::bigint AS txid, position FROM events \
                 ORDER BY events.txid DESC, events.position DESC LIMIT 1"
            }
        });
        self.cursor_of(&head).await
    }

    /// The head of the log as a reader may see it: on PostgreSQL below the
    /// global-order bound (ADR 0002).
    pub async fn readable_head(&self) -> Result<Cursor, sqlx::Error> {
        let head = match self.dialect() {
            Dialect::Sqlite => Statement::new(
                "SELECT 0 AS txid, coalesce(max(position), 0) AS position FROM events",
            ),
            Dialect::Postgres => Statement::new(
                "SELECT txid::text::bigint AS txid, position FROM events \
                 WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.txid DESC, events.position DESC LIMIT 1",
            ),
        };
        self.cursor_of(&head).await
    }

    /// The last event recorded before `at` (RFC 3339), or the start: where
    /// a reader that lost its place and knows only a time goes on from.
    /// A scan, for rare calls (a Shared Signals stream started at a time).
    pub async fn cursor_before(
        &self,
        at: &chrono::DateTime<chrono::Utc>,
    ) -> Result<Cursor, sqlx::Error> {
        let statement = match self.dialect() {
            Dialect::Sqlite => Statement::new(
                "SELECT 0 AS txid, coalesce(max(position), 0) AS position FROM events \
                 WHERE recorded_at < $1",
            )
            .text(crate::inline::timestamp(at)),
            Dialect::Postgres => Statement::new(
                "SELECT txid::text::bigint AS txid, position FROM events \
                 WHERE recorded_at < $1::timestamptz AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.txid DESC, events.position DESC LIMIT 1",
            )
            .text(at.to_rfc3339()),
        };
        self.cursor_of(&statement).await
    }

    async fn events_where_between(
        &self,
        after: Cursor,
        reach: Cursor,
        column: &'static str,
        values: &[&str],
        limit: i64,
    ) -> Result<(Vec<StoredEvent>, Cursor), sqlx::Error> {
        let dialect = self.dialect();
        if reach <= after || values.is_empty() {
            return Ok((Vec::new(), after.max(reach)));
        }
        let (bounds, first) = match dialect {
            Dialect::Sqlite => ("position > $1 AND position <= $2", 3),
            Dialect::Postgres => (
                "(txid, position) > ($1::text::xid8, $2) AND (txid, position) <= ($3::text::xid8, $4)",
                5,
            ),
        };
        let placeholders: Vec<String> = (0..values.len())
            .map(|i| format!("${}", first + i))
            .collect();
        let order = match dialect {
            Dialect::Sqlite => "position",
            Dialect::Postgres => "events.txid, events.position",
        };
        let sql = format!(
            "SELECT {} FROM events WHERE {bounds} AND {column} IN ({}) ORDER BY {order} LIMIT ${}",
            event_columns(dialect),
            placeholders.join(", "),
            first + values.len(),
        );
        let mut statement = match dialect {
            Dialect::Sqlite => Statement::new(sql).int(after.position).int(reach.position),
            Dialect::Postgres => Statement::new(sql)
                .text(after.txid.to_string())
                .int(after.position)
                .text(reach.txid.to_string())
                .int(reach.position),
        };
        for value in values {
            statement = statement.text(*value);
        }
        let events = self.fetch_events(&statement.int(limit)).await?;
        // A full page may stop short of the reach: go on from its last.
        let reached = match events.last() {
            Some(last) if events.len() as i64 == limit => last.cursor(),
            _ => reach,
        };
        Ok((events, reached))
    }

    /// One stream's events, in its own order.
    pub async fn stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let statement = Statement::new(format!(
            "SELECT {} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
            event_columns(self.dialect())
        ))
        .text(aggregate_type)
        .text(aggregate_id);
        self.fetch_events(&statement).await
    }

    /// The events at these positions, in global order.
    pub async fn events_at(&self, positions: &[i64]) -> Result<Vec<StoredEvent>, sqlx::Error> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let dialect = self.dialect();
        let mut statement = Statement::new(format!(
            "SELECT {} FROM events WHERE position IN ({}) ORDER BY {}",
            event_columns(dialect),
            placeholders(0, positions.len()),
            log_order(dialect)
        ));
        for position in positions {
            statement = statement.int(*position);
        }
        self.fetch_events(&statement).await
    }

    /// When committed events wait above the global-order bound, the
    /// backend whose open transaction holds it: pid, application, state
    /// and start. Always `None` on SQLite, whose order has no bound.
    pub async fn global_order_holder(&self) -> Result<Option<String>, sqlx::Error> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(None);
        }
        let waiting = self
            .db()
            .scalar_i64(&Statement::new(WAITING_ABOVE_THE_BOUND))
            .await?;
        if waiting == 0 {
            return Ok(None);
        }
        let holder = self
            .db()
            .fetch_optional(&Statement::new(
                "SELECT pid::bigint AS pid, application_name, state, xact_start::text AS xact_start FROM pg_stat_activity
                 WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                 ORDER BY age(backend_xid) DESC LIMIT 1",
            ))
            .await?;
        Ok(holder.map(|row| {
            format!(
                "pid {} ({}), {}, transaction started {}",
                row.int("pid").unwrap_or(0),
                row.text("application_name").unwrap_or_default(),
                row.text("state").unwrap_or_default(),
                row.text("xact_start").unwrap_or_default()
            )
        }))
    }
}
