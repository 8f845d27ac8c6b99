//! Which process of the projector's high-availability pair sends what
//! must be sent once (back-channel logouts, Shared Signals pushes).

use writ_store::statement::Statement;
use writ_store::{Conn, Dialect, Store};

/// Whether this process leads: always on SQLite (one process owns the
/// file); on PostgreSQL while a connection of its own holds the session
/// lock, checked alive on every call, since the lock goes with the
/// connection.
pub struct Leadership {
    lock: i64,
    what: &'static str,
    conn: Option<Conn>,
    leading: bool,
}

impl Leadership {
    pub fn new(lock: i64, what: &'static str) -> Self {
        Self {
            lock,
            what,
            conn: None,
            leading: false,
        }
    }

    pub async fn lead(&mut self, store: &Store) -> bool {
        if store.dialect() == Dialect::Sqlite {
            return true;
        }
        if self.conn.is_none() {
            self.leading = false;
            self.conn = Conn::connect(store.target()).await.ok();
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let held = if self.leading {
            conn.fetch_optional(&Statement::new("SELECT 1 AS alive"))
                .await
                .map(|_| true)
        } else {
            crate::run::try_lock(conn, self.lock).await
        };
        match held {
            Ok(held) => {
                if held && !self.leading {
                    tracing::info!(what = self.what, "this process now delivers");
                }
                self.leading = held;
            }
            Err(_) => {
                self.conn = None;
                self.leading = false;
            }
        }
        self.leading
    }
}
