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
///
/// It never runs backwards within a process. A consent withdrawn, a
/// password changed or an account disabled ends the grants created
/// *before* it; had the clock stepped back between a grant and its
/// withdrawal, the withdrawal would seem older than the grant and leave it
/// alive. A step back stands the clock still for as long as the step.
#[derive(Debug, Default)]
pub struct DatabaseClock {
    offset_micros: AtomicI64,
    /// The latest time handed out, in microseconds since the epoch.
    latest_micros: AtomicI64,
}

/// How often the offset is measured again.
const SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// A measurement is uncertain by half its round trip. One that waited on a
/// recovering or overloaded database (the soak saw seconds) would skew
/// every time this process writes until the next one, so it is dropped.
const MAX_ROUND_TRIP: chrono::Duration = chrono::Duration::milliseconds(100);

impl Clock for DatabaseClock {
    fn now(&self) -> DateTime<Utc> {
        let corrected =
            Utc::now() + chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed));
        // Whole microseconds, as the log keeps them, so that comparing two
        // answers is comparing what is written.
        let micros = corrected.timestamp_micros();
        let before = self.latest_micros.fetch_max(micros, Ordering::Relaxed);
        DateTime::from_timestamp_micros(before.max(micros)).unwrap_or(corrected)
    }
}

/// The server's offset from this host, by a query sent at `sent` and
/// answered at `received` that read `server`; none if the round trip was
/// too long to trust.
fn offset_of(sent: DateTime<Utc>, server: DateTime<Utc>, received: DateTime<Utc>) -> Option<i64> {
    let round_trip = received - sent;
    if round_trip > MAX_ROUND_TRIP || round_trip < chrono::Duration::zero() {
        return None;
    }
    (server - (sent + round_trip / 2)).num_microseconds()
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
        match server.map(|server| offset_of(sent, server, received)) {
            Some(Some(offset)) => self.offset_micros.store(offset, Ordering::Relaxed),
            Some(None) => tracing::debug!(
                round_trip_ms = (received - sent).num_milliseconds(),
                "clock offset not taken: the round trip was too long to trust"
            ),
            None => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + millis).unwrap_or_default()
    }

    #[test]
    fn an_offset_is_taken_from_a_quick_round_trip_and_not_from_a_slow_one() {
        // Sent at 0, answered at 10 ms; the server read 505 ms: 500 ahead.
        assert_eq!(offset_of(at(0), at(505), at(10)), Some(500_000));
        // A query that waited 6 s on a recovering database would have said
        // the server was 3 s ahead of a host whose clock agrees with it.
        assert_eq!(offset_of(at(0), at(6_000), at(6_000)), None);
        assert_eq!(
            offset_of(at(10), at(5), at(0)),
            None,
            "answered before sent"
        );
    }

    #[test]
    fn the_clock_never_runs_backwards_when_its_offset_drops() {
        let clock = DatabaseClock::default();
        clock.offset_micros.store(3_000_000, Ordering::Relaxed);
        let ahead = clock.now();
        clock.offset_micros.store(0, Ordering::Relaxed);
        let after = clock.now();
        assert!(after >= ahead, "{after} is before {ahead}");
        assert!(Utc::now() < ahead, "the offset was in force");
    }
}
