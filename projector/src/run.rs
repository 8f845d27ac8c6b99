//! The projector's life: active or standby on PostgreSQL's advisory lock,
//! woken by commits, reconnecting after storage errors, stopped by a
//! poison event or by shutdown.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use writ_store::statement::Statement;
use writ_store::{Conn, Dialect, RowExt, Target};

use crate::{Outcome, Projector, ProjectorError, PROJECTION};

/// How long the global-order bound may hold the projector back before the
/// backend holding it is named in the log.
const HELD_BACK_WARNING: Duration = Duration::from_secs(5);
/// The session-level advisory lock whose holder is the active projector.
const LEADER_LOCK: i64 = 0x0057_5249_5450_524f; // "WRITPRO"
/// How often a standby tries the lock.
pub(crate) const STANDBY_POLL: Duration = Duration::from_millis(500);
/// The projector connection's session settings. Keepalives (user-settable
/// on the server): a lock holder whose host vanished is noticed in about
/// 3 s. Custom plans: the audit statement's generic plan, made while the
/// tables were small, would go on scanning them as they grow (seen: 1 s a
/// slice after a few thousand events).
const SESSION_SETTINGS: &str = "SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2; SET tcp_user_timeout = 3000; SET plan_cache_mode = force_custom_plan";

impl Projector {
    /// Whether this projector may project: always on SQLite (one process
    /// owns the file); on PostgreSQL while it holds the leader lock.
    async fn lead(&mut self) -> Result<bool, ProjectorError> {
        if self.conn.dialect() == Dialect::Sqlite || self.leading {
            return Ok(true);
        }
        self.leading = try_lock(&mut self.conn, LEADER_LOCK).await?;
        if self.leading {
            self.metrics.active.set(1);
            tracing::info!("this projector is now the active one");
        }
        Ok(self.leading)
    }

    /// After a storage error the connection may be gone, and the lock with
    /// it: reconnect and stand by until the lock is won again.
    async fn reconnect(&mut self) {
        self.leading = false;
        self.metrics.active.set(0);
        match crate::connect_projection(self.store.target()).await {
            Ok(mut conn) => {
                if conn.dialect() == Dialect::Postgres {
                    let _ = conn.batch(SESSION_SETTINGS).await;
                }
                self.conn = conn;
                self.synchronous_full = false;
            }
            Err(err) => tracing::warn!(error = %err, "projector cannot reconnect; retrying"),
        }
    }

    /// Projects until idle, then waits for a commit ([`Wakeups`]). Stops
    /// when `shutdown` fires.
    pub async fn run_until_stopped(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut wakeups = Wakeups::new(&self.store, self.check_interval).await;
        let mut held_back_since: Option<Instant> = None;
        if self.conn.dialect() == Dialect::Postgres {
            let _ = self.conn.batch(SESSION_SETTINGS).await;
        }
        loop {
            match self.lead().await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "projector lost its connection; reconnecting");
                    self.reconnect().await;
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                    }
                }
            }
            let step = self.project_next().await;
            if let Ok(outcome) = &step {
                self.measure_lag(outcome).await;
            }
            match step {
                Ok(Outcome::Projected { events, through }) => {
                    held_back_since = None;
                    self.run_policies(through, 1).await;
                    if let Some(at) = self.next_slice_at(events) {
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            _ = tokio::time::sleep_until(at.into()) => {}
                        }
                    }
                    continue;
                }
                Ok(Outcome::Idle) => {
                    match self.checkpoint().await {
                        Ok(through) => self.run_policies(through, usize::MAX).await,
                        Err(err) => {
                            tracing::warn!(error = %err, "policy step failed; retrying at the next wake-up");
                        }
                    }
                    self.report_held_back(&mut held_back_since).await
                }
                Err(ProjectorError::Poison(why)) => {
                    tracing::error!(projection = PROJECTION, reason = %why, "projection stopped on an event it cannot read");
                    self.metrics.stopped.set(1);
                    // Stay up (health, metrics) until told to stop; the
                    // projection resumes only after an upgrade or a fix.
                    let _ = shutdown.changed().await;
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "projector step failed; reconnecting");
                    self.reconnect().await;
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                    }
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = wakeups.next() => {}
            }
        }
    }

    /// On PostgreSQL, committed events above the global-order bound wait
    /// for an older open transaction; after a few seconds name it.
    async fn report_held_back(&mut self, since: &mut Option<Instant>) {
        match self.store.global_order_holder().await {
            Ok(Some(holder)) => {
                let started = *since.get_or_insert_with(Instant::now);
                if started.elapsed() >= HELD_BACK_WARNING {
                    tracing::warn!(holder = %holder, waited_secs = started.elapsed().as_secs(), "the projector is held back by an open transaction");
                    *since = Some(Instant::now());
                }
            }
            _ => *since = None,
        }
    }
}

/// Takes a session-level advisory lock if it is free.
pub(crate) async fn try_lock(conn: &mut Conn, lock: i64) -> Result<bool, sqlx::Error> {
    let row = conn
        .fetch_optional(&Statement::new("SELECT pg_try_advisory_lock($1)::int AS held").int(lock))
        .await?;
    Ok(row.and_then(|r| r.int("held")) == Some(1))
}

/// Commits to wake up for: this process's (the committer's signal) or
/// another one's. On PostgreSQL the committer's NOTIFY arrives, with the
/// interval as a backstop; on SQLite `PRAGMA data_version` changes on a
/// connection of its own when another connection commits.
pub(crate) struct Wakeups {
    commits: watch::Receiver<writ_store::Cursor>,
    notifications: Option<sqlx::postgres::PgListener>,
    sqlite: Option<(Conn, Option<i64>)>,
    tick: tokio::time::Interval,
}

impl Wakeups {
    pub(crate) async fn new(store: &writ_store::Store, interval: Duration) -> Self {
        Self::with(store, interval, store.commits()).await
    }

    /// As [`Wakeups::new`], but this process's commits wake it only when
    /// they hold one of `event_types`.
    pub(crate) async fn of_kinds(
        store: &writ_store::Store,
        interval: Duration,
        event_types: &'static [&'static str],
    ) -> Self {
        Self::with(store, interval, store.commits_of(event_types)).await
    }

    async fn with(
        store: &writ_store::Store,
        interval: Duration,
        commits: watch::Receiver<writ_store::Cursor>,
    ) -> Self {
        let (notifications, sqlite) = match store.target() {
            Target::Postgres(url) => match sqlx::postgres::PgListener::connect(url).await {
                Ok(mut listener) => (
                    listener
                        .listen(writ_store::COMMIT_CHANNEL)
                        .await
                        .ok()
                        .map(|()| listener),
                    None,
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for commits; checking every interval instead");
                    (None, None)
                }
            },
            Target::Sqlite(_) => (
                None,
                Conn::connect(store.target())
                    .await
                    .ok()
                    .map(|conn| (conn, None)),
            ),
        };
        Self {
            commits,
            notifications,
            sqlite,
            tick: tokio::time::interval(interval),
        }
    }

    pub(crate) async fn next(&mut self) {
        loop {
            let notified = async {
                match self.notifications.as_mut() {
                    Some(listener) => listener.recv().await.map(drop),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.commits.changed() => return,
                _ = notified => return,
                _ = self.tick.tick() => {
                    let Some((conn, seen)) = self.sqlite.as_mut() else {
                        return;
                    };
                    let version = conn
                        .fetch_optional(&Statement::new("PRAGMA data_version"))
                        .await
                        .ok()
                        .flatten()
                        .and_then(|row| row.int("data_version"));
                    if version != *seen {
                        *seen = version;
                        return;
                    }
                }
            }
        }
    }
}
