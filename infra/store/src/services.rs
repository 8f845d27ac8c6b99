//! The production clock and randomness behind the domain's services.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use writ_domain::{Clock, Randomness, Services};

use crate::statement::Statement;
use crate::{Dialect, RowExt, Store};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// UUID v7: the time in milliseconds, then a counter reseeded at random
/// each millisecond and random bits (uuid's `now_v7`). The ids made here
/// (a JWT's `jti`) key index rows; in time order they land on the index's
/// last page instead of a random one, so a batch writes one page per index
/// rather than one per command (ADR 0025).
/// They are never secrets: a `jti` travels inside its token.
pub struct OsRandomness;

impl Randomness for OsRandomness {
    fn uuid(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

pub fn system() -> Services {
    Services::new(Arc::new(SystemClock), Arc::new(OsRandomness))
}

/// The wall clock corrected to the database server's, so every process of
/// a split deployment decides expiry by one clock even when their hosts'
/// clocks drift apart (F12). On SQLite there is one host: no correction.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    offset_micros: AtomicI64,
}

/// How often the offset is measured again.
const SYNC_INTERVAL: Duration = Duration::from_secs(10);

impl Clock for DatabaseClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }
}

impl DatabaseClock {
    /// Measures the offset once, halving the round trip (NTP-style).
    pub async fn sync(&self, store: &Store) -> Result<(), sqlx::Error> {
        if store.db().dialect() != Dialect::Postgres {
            return Ok(());
        }
        let sent = Utc::now();
        let row = store
            .db()
            .fetch_optional(&Statement::new(
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS now",
            ))
            .await?;
        let received = Utc::now();
        let server = row
            .and_then(|r| r.text("now"))
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        if let Some(server) = server {
            let local = sent + (received - sent) / 2;
            let offset = (server - local).num_microseconds().unwrap_or(0);
            self.offset_micros.store(offset, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn spawn_sync(self: &Arc<Self>, store: Store) {
        let clock = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SYNC_INTERVAL).await;
                let Some(clock) = clock.upgrade() else { return };
                if let Err(err) = clock.sync(&store).await {
                    tracing::debug!(error = %err, "clock offset not measured this time");
                }
            }
        });
    }

    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }
}

/// Services whose clock follows the database's (measured now and every
/// few seconds).
pub async fn synced(store: &Store) -> Services {
    let clock = Arc::new(DatabaseClock::default());
    if let Err(err) = clock.sync(store).await {
        tracing::warn!(error = %err, "cannot read the database clock; using this host's");
    }
    if store.db().dialect() == Dialect::Postgres {
        clock.spawn_sync(store.clone());
    }
    if clock.offset().num_milliseconds().abs() > 1000 {
        tracing::warn!(
            offset_ms = clock.offset().num_milliseconds(),
            "this host's clock differs from the database's; Writ follows the database's"
        );
    }
    Services::new(clock, Arc::new(OsRandomness))
}
