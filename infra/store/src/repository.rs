//! Writ's `PersistedEventRepository`: reads delegate to sqlite-es over its
//! tables, appends go to the committer. The executor talks to the store
//! directly (it needs the committed positions); this impl exists so
//! cqrs-es's `PersistedEventStore` can load aggregates through it.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

use super::{AppendError, Db, Store};

/// An enum, not a trait object: the trait's methods are generic.
enum Reads {
    Sqlite(SqliteEventRepository),
    Postgres(PostgresEventRepository),
}

pub struct WritRepository {
    store: Store,
    reads: Reads,
}

impl WritRepository {
    pub fn new(store: Store) -> Self {
        let reads = match store.db() {
            Db::Sqlite(pool) => Reads::Sqlite(SqliteEventRepository::new(pool.clone())),
            Db::Postgres(pool) => Reads::Postgres(PostgresEventRepository::new(pool.clone())),
        };
        Self { store, reads }
    }
}

macro_rules! delegate {
    ($self:ident, $method:ident :: <$a:ty> ($($arg:expr),*)) => {
        match &$self.reads {
            Reads::Sqlite(reads) => reads.$method::<$a>($($arg),*).await,
            Reads::Postgres(reads) => reads.$method::<$a>($($arg),*).await,
        }
    };
}

impl PersistedEventRepository for WritRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, get_events::<A>(aggregate_id))
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, get_last_events::<A>(aggregate_id, last_sequence))
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        delegate!(self, get_snapshot::<A>(aggregate_id))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        match self.store.append(events.to_vec(), Vec::new()).await {
            Ok(_) => Ok(()),
            Err(AppendError::Conflict) => Err(PersistenceError::OptimisticLockError),
            Err(other) => Err(PersistenceError::UnknownError(Box::new(other))),
        }
    }

    /// sqlite-es unwraps row errors inside its streaming task; loading the
    /// (short) stream and feeding it ourselves keeps errors as values on
    /// both backends.
    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        for event in events {
            if feed.push(Ok(event)).await.is_err() {
                break;
            }
        }
        Ok(stream)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        Err(PersistenceError::UnknownError(
            "streaming every event of a type is done by the projector's position-ordered reader"
                .into(),
        ))
    }
}
