//! Clients and token lookups held in memory, answered only while nobody
//! has committed anything the memory does not reflect (ADR 0010).
//!
//! On SQLite every request first asks `PRAGMA data_version` on a held
//! connection: unchanged means no connection has committed since the last
//! check, so the memory is as fresh as the database. A request reads
//! under one check while nothing has waited since it (introspection's
//! client, then its token). Changed means someone
//! committed; then the log's head tells whether it was only this process's
//! committer, whose batches claim their positions here before they commit
//! and remove what they change from memory before they answer. Any other
//! writer (the CLI, a second process) empties the memory, and so does a
//! rewrite of the read tables without events (`writ replay --swap` moves
//! SQLite's `user_version`). While a batch is between its claim and its
//! answer, a change seen is not trusted at all. So a revoke or a
//! `writ client disable` anywhere is seen by the very next request.
//!
//! Entries arrive by read-through: a reader that found a row in the
//! database keeps it only if nothing was removed from memory meanwhile
//! (the generation it saw at its check is still current), so a row read
//! before a revocation committed can never outlive it. On PostgreSQL
//! there is no memory: the check would cost the round trip it saves.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;
use rustc_hash::FxHashMap;

use crate::views::clients::CurrentClient;
use crate::views::tokens::TokenLookup;
use crate::StoredEvent;

/// Bounds on what is held: about 1 KiB per token lookup.
const TOKENS: usize = 16_384;
const CLIENTS: usize = 1_024;

/// A check's verdict: the memory may be read, and what was read from the
/// database may be kept if the generation has not moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    generation: u64,
}

pub struct Memory {
    /// Read-only connections that only ever ask for the data version and
    /// the log's head, with the version each saw at its last check. More
    /// than one, so that request threads checking at once do not queue.
    watches: Vec<Mutex<Watch>>,
    next_watch: AtomicUsize,
    state: Mutex<State>,
}

struct Watch {
    conn: rusqlite::Connection,
    /// What `PRAGMA data_version` said on this connection when the memory
    /// was last known to reflect every commit.
    data_version: i64,
}

/// One per request thread of a 2-core machine, and a spare.
const WATCHES: usize = 3;

struct State {
    /// The memory reflects every event up to this position, or the event
    /// belongs to a batch of this process that has not answered yet.
    claimed: i64,
    /// While a batch has claimed positions and not yet answered: the
    /// positions the memory reflected before it. A head beyond them may be
    /// the batch's COMMIT, or, if that failed and released the write lock,
    /// another writer's at the same positions, so it is not trusted.
    committing: Option<i64>,
    /// SQLite's `user_version`, which rewrites of the read tables without
    /// events (`writ replay --swap`) move; see [`mark_read_tables_rewritten`].
    rewrites: i64,
    /// Moves whenever anything is removed.
    generation: u64,
    tokens: LruCache<String, TokenLookup>,
    /// Keys of the held tokens by grant, for the grant's events.
    by_grant: FxHashMap<String, Vec<String>>,
    clients: LruCache<String, Arc<CurrentClient>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn data_version(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |row| row.get(0))
}

/// The log's head and the read tables' rewrite count, in one read.
fn head(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT coalesce(max(position), 0), (SELECT user_version FROM pragma_user_version) FROM events",
    )?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
}

/// For whoever rewrites the read tables without appending events (the
/// swap of a replayed read model): inside that write transaction, so that
/// every process's memory of them is emptied at its next check.
pub async fn mark_read_tables_rewritten(conn: &mut crate::Conn) -> Result<(), sqlx::Error> {
    if conn.dialect() != crate::Dialect::Sqlite {
        return Ok(());
    }
    let row = conn
        .fetch_optional(&crate::statement::Statement::new("PRAGMA user_version"))
        .await?;
    let current = row.and_then(|row| row.values().next().and_then(|v| v.as_i64()));
    // An integer this code read and incremented: nothing from outside.
    conn.batch(&format!(
        "PRAGMA user_version = {}",
        current.unwrap_or(0) + 1
    ))
    .await
}

impl Memory {
    pub(crate) fn open(database: &Path) -> rusqlite::Result<Self> {
        let mut watches = Vec::with_capacity(WATCHES);
        let mut claimed = 0;
        let mut rewrites = 0;
        for _ in 0..WATCHES {
            let conn = crate::embedded::open(database, true)?;
            let data_version = data_version(&conn)?;
            (claimed, rewrites) = head(&conn)?;
            watches.push(Mutex::new(Watch { conn, data_version }));
        }
        let capacity = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            watches,
            next_watch: AtomicUsize::new(0),
            state: Mutex::new(State {
                claimed,
                committing: None,
                rewrites,
                generation: 0,
                tokens: LruCache::new(capacity(TOKENS)),
                by_grant: FxHashMap::default(),
                clients: LruCache::new(capacity(CLIENTS)),
            }),
        })
    }

    /// A free watch connection, else the next one in turn.
    fn watch(&self) -> MutexGuard<'_, Watch> {
        for watch in &self.watches {
            if let Ok(free) = watch.try_lock() {
                return free;
            }
        }
        let turn = self.next_watch.fetch_add(1, Ordering::Relaxed) % self.watches.len();
        lock(&self.watches[turn])
    }

    /// Confirms that nobody else has committed since the memory last
    /// reflected the database; `None` when that cannot be told (the check
    /// failed), and the caller must read the database.
    pub fn check(&self) -> Option<Fresh> {
        let mut watch = self.watch();
        // The version is read before the head: a commit between the two
        // then shows again at the next check instead of being missed.
        let data_version = data_version(&watch.conn).ok()?;
        if data_version == watch.data_version {
            return Some(Fresh {
                generation: lock(&self.state).generation,
            });
        }
        let (head, rewrites) = head(&watch.conn).ok()?;
        let mut state = lock(&self.state);
        if state.committing.is_some_and(|reflected| head > reflected) {
            return None;
        }
        if head > state.claimed || rewrites != state.rewrites {
            state.forget_everything();
            state.claimed = head.max(state.claimed);
            state.rewrites = rewrites;
        }
        watch.data_version = data_version;
        Some(Fresh {
            generation: state.generation,
        })
    }

    pub fn token(&self, _: Fresh, key: &str) -> Option<TokenLookup> {
        lock(&self.state).tokens.get(key).cloned()
    }

    pub fn client(&self, _: Fresh, client_id: &str) -> Option<Arc<CurrentClient>> {
        lock(&self.state).clients.get(client_id).cloned()
    }

    /// Keeps a lookup read from the database after `fresh`, unless
    /// something was removed meanwhile.
    pub fn keep_token(&self, fresh: Fresh, key: &str, lookup: &TokenLookup) {
        let mut state = lock(&self.state);
        if state.generation != fresh.generation {
            return;
        }
        let gid = lookup.gid.clone();
        if let Some((evicted, old)) = state.tokens.push(key.to_owned(), lookup.clone()) {
            if evicted != key {
                state.unindex(&old.gid, &evicted);
            }
        }
        state.by_grant.entry(gid).or_default().push(key.to_owned());
    }

    pub fn keep_client(&self, fresh: Fresh, client: &Arc<CurrentClient>) {
        let mut state = lock(&self.state);
        if state.generation == fresh.generation {
            state
                .clients
                .push(client.row.client_id.clone(), Arc::clone(client));
        }
    }

    /// Called by the committer with the write lock held, before COMMIT:
    /// positions `first..=last` are its batch's. A gap before `first`
    /// means another writer committed since the memory last looked.
    pub(crate) fn claim(&self, first: i64, last: i64) {
        let mut state = lock(&self.state);
        if first - 1 > state.claimed {
            state.forget_everything();
        }
        state.committing = Some(first - 1);
        state.claimed = state.claimed.max(last);
    }

    /// Called by the committer when a claimed batch's COMMIT failed or its
    /// outcome is unknown: those positions may be another writer's next.
    pub(crate) fn abandon(&self, first: i64) {
        let mut state = lock(&self.state);
        state.forget_everything();
        state.claimed = first - 1;
        state.committing = None;
    }

    /// Called by the committer after COMMIT, before it answers: removes
    /// whatever the batch's events may have changed.
    pub(crate) fn committed(&self, events: &[&StoredEvent]) {
        let mut state = lock(&self.state);
        state.committing = None;
        state.generation += 1;
        for event in events {
            match event.aggregate_type.as_str() {
                "Grant" => {
                    for key in state
                        .by_grant
                        .remove(&event.aggregate_id)
                        .unwrap_or_default()
                    {
                        state.tokens.pop(&key);
                    }
                }
                // Sessions, sign-in counts, pushed requests, client
                // assertions, DPoP proofs and status lists decide no token and no
                // client.
                "Session" | "LoginDay" | "PushedRequest" | "ClientAssertion" | "DpopProof"
                | "StatusList" => {}
                // A new registration access token changes no client row.
                "Client" if event.event_type == "RegistrationTokenRotated" => {}
                // A client, account, consent or signing key reaches every
                // token of it; they change rarely, so start again.
                _ => {
                    state.forget_everything();
                    return;
                }
            }
        }
    }
}

impl State {
    fn forget_everything(&mut self) {
        self.generation += 1;
        self.tokens.clear();
        self.by_grant.clear();
        self.clients.clear();
    }

    fn unindex(&mut self, gid: &str, key: &str) {
        if let Some(keys) = self.by_grant.get_mut(gid) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_grant.remove(gid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::Statement;
    use crate::{Conn, Target};

    fn client(client_id: &str) -> Arc<CurrentClient> {
        Arc::new(CurrentClient::from(crate::views::clients::ClientRow {
            client_id: client_id.into(),
            name: "c".into(),
            settings: "{}".into(),
            secret_hash: None,
            status: crate::views::clients::ClientStatus::Active,
            registered_at: String::new(),
            updated_at: String::new(),
        }))
    }

    /// A SQLite file with the log's table, a memory over it holding one
    /// client, and another writer's connection.
    async fn held(dir: &tempfile::TempDir) -> (Memory, Conn) {
        let path = dir.path().join("writ.db");
        let mut other = Conn::connect(&Target::Sqlite(path.clone()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        other
            .execute(&[Statement::new("CREATE TABLE events (position INTEGER)")])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let memory = Memory::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let fresh = memory.check().unwrap_or_else(|| panic!("check"));
        memory.keep_client(fresh, &client("svc"));
        (memory, other)
    }

    fn holds(memory: &Memory) -> Option<bool> {
        let fresh = memory.check()?;
        Some(memory.client(fresh, "svc").is_some())
    }

    #[tokio::test]
    async fn a_change_seen_between_claim_and_answer_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (memory, mut other) = held(&dir).await;
        memory.claim(1, 1);
        // The batch's COMMIT failed and released the lock; another writer
        // took position 1.
        other
            .execute(&[Statement::new("INSERT INTO events VALUES (1)")])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(holds(&memory), None, "read the database instead");
        memory.abandon(1);
        assert_eq!(holds(&memory), Some(false), "emptied");
    }

    #[tokio::test]
    async fn a_rewrite_of_the_read_tables_empties_the_memory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (memory, mut other) = held(&dir).await;
        other
            .execute(&[Statement::new("INSERT INTO events VALUES (0)")])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(holds(&memory), Some(true), "no new position: kept");
        mark_read_tables_rewritten(&mut other)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(holds(&memory), Some(false));
    }
}
