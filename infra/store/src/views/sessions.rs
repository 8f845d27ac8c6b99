//! Browser sessions at Writ itself (single sign-on).

use super::accounts::AccountStatus;
use super::status;
use super::table;
use crate::statement::Statement;
use crate::Db;

table! {
    SESSIONS = "sessions", columns session {
        sid, sub, auth_time, expires_at, status, updated_at,
    }
    key [sid]
    lookups [sub]
}

status!(SessionStatus {
    Live = "live",
    Ended = "ended",
});

/// A session with the status of its account, which ends it too.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub sid: String,
    pub sub: String,
    pub auth_time: String,
    pub expires_at: String,
    #[sqlx(try_from = "String")]
    pub status: SessionStatus,
    #[sqlx(try_from = "String")]
    pub account_status: AccountStatus,
}

impl SessionRow {
    /// Live, its account active, and not expired at `now` (a read-table
    /// timestamp, so text order is time order).
    pub fn is_live_at(&self, now: &str) -> bool {
        self.status == SessionStatus::Live
            && self.account_status == AccountStatus::Active
            && self.expires_at.as_str() > now
    }
}

pub async fn find(db: &Db, sid: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    db.fetch_row(
        &Statement::new(
            "SELECT s.sid, s.sub, s.auth_time, s.expires_at, s.status, a.status AS account_status \
             FROM sessions s JOIN accounts a ON a.sub = s.sub WHERE s.sid = $1",
        )
        .text(sid),
    )
    .await
}

/// The sessions of `sub` not yet ended (some may have expired): what
/// `writ user sign-out` ends.
pub async fn live_of(db: &Db, sub: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = db
        .fetch_rows(
            &Statement::new("SELECT sid FROM sessions WHERE sub = $1 AND status = $2")
                .text(sub)
                .text(SessionStatus::Live.as_str()),
        )
        .await?;
    Ok(rows.into_iter().map(|(sid,)| sid).collect())
}
