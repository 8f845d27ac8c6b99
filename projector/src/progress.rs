//! How far a replay goes ([`Until`]) and how far it has come
//! ([`Progress`]), shared by the page-by-page replay and the bulk load.

use std::time::Instant;

use chrono::{DateTime, Utc};
use writ_store::statement::Statement;
use writ_store::{Conn, Cursor, RowExt, StoredEvent};

use crate::ProjectorError;

/// Where a replay stops: at the log's head, after the event at a cursor, or
/// at the longest prefix of the log whose commit times are all ≤ a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Head,
    Cursor(Cursor),
    RecordedAt(DateTime<Utc>),
}

impl Until {
    pub(crate) fn admits(&self, event: &StoredEvent) -> bool {
        self.admits_at(event.cursor(), &event.recorded_at)
    }

    pub(crate) fn admits_at(&self, at: Cursor, recorded_at: &str) -> bool {
        match self {
            Self::Head => true,
            Self::Cursor(cursor) => at <= *cursor,
            Self::RecordedAt(time) => {
                DateTime::parse_from_rfc3339(recorded_at).is_ok_and(|recorded| recorded <= *time)
            }
        }
    }
}

/// How far a replay has come, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub replayed: u64,
    /// Events in the log when the replay started.
    pub total: u64,
    pub started: Instant,
}

impl Progress {
    /// Counts the log once, for every pass of one replay.
    pub(crate) async fn start(conn: &mut Conn) -> Result<Self, ProjectorError> {
        let live = conn.dialect().live_schema();
        let total = conn
            .fetch_optional(&Statement::new(format!(
                "SELECT count(*) AS n FROM {live}.events"
            )))
            .await?
            .and_then(|row| row.int("n"))
            .unwrap_or(0);
        Ok(Self {
            replayed: 0,
            total: total as u64,
            started: Instant::now(),
        })
    }

    pub fn events_per_second(&self) -> f64 {
        self.replayed as f64 / self.started.elapsed().as_secs_f64().max(1e-6)
    }
}
