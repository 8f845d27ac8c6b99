//! Runs commands: load the aggregate through cqrs-es's `PersistedEventStore`,
//! let `handle` decide with an `EventSink`, hand the events to the
//! committer, and return what was committed with its cursor — which
//! cqrs-es's `CqrsFramework::execute` cannot tell its caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventStore, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope, EventStore};
use writ_domain::Services;

use crate::{AppendError, Cursor, SideWrite, Store, WritRepository};

/// How often a command that lost a conflict is re-decided on fresh state
/// before the caller sees the conflict.
const MAX_ATTEMPTS: usize = 5;

/// Who asked, and through which request. Never holds a secret.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub actor: String,
    pub request_id: String,
    pub client_id: Option<String>,
    /// How the client of a client-authenticated request authenticated
    /// (`client_secret_basic`, `private_key_jwt`, …), so an auditor sees it
    /// on every event the request caused.
    pub client_auth: Option<String>,
}

impl Metadata {
    pub fn cli(actor: &str) -> Self {
        Self {
            actor: actor.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            client_id: None,
            client_auth: None,
        }
    }

    /// A client's command: the actor is `client:<id>`, with how it
    /// authenticated when it did (`client_secret_basic`, `private_key_jwt`,
    /// `registration_access_token`, …).
    pub fn client(client_id: &str, request_id: &str, client_auth: Option<&str>) -> Self {
        Self {
            actor: format!("client:{client_id}"),
            request_id: request_id.to_owned(),
            client_id: Some(client_id.to_owned()),
            client_auth: client_auth.map(str::to_owned),
        }
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("actor".to_owned(), self.actor.clone()),
            ("request_id".to_owned(), self.request_id.clone()),
        ]);
        if let Some(client_id) = &self.client_id {
            map.insert("client_id".to_owned(), client_id.clone());
        }
        if let Some(method) = &self.client_auth {
            map.insert("client_auth".to_owned(), method.clone());
        }
        map
    }
}

#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    pub events: Vec<EventEnvelope<A>>,
    /// `None` when the command decided that nothing needed recording.
    pub cursor: Option<Cursor>,
    /// The aggregate with the committed events applied: what a caller
    /// needs beyond the new events (a code grant's nonce for its id_token).
    pub state: A,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    #[error(transparent)]
    Rejected(E),
    #[error("the aggregate kept changing under the command")]
    Conflict,
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    #[error("the outcome of the commit is unknown")]
    OutcomeUnknown,
}

#[derive(Clone)]
pub struct Executor {
    store: Store,
    services: Services,
    turns: Arc<StreamTurns>,
}

/// Commands on one existing stream take turns inside a process: deciding
/// them concurrently could only produce conflicts (one winner per batch),
/// so eight parallel logins of one account would exhaust their retries.
/// Other processes still meet through the store's conflict check.
#[derive(Default)]
struct StreamTurns(Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

/// Beyond this many idle entries the map is swept.
const MAX_TURN_ENTRIES: usize = 10_000;

impl StreamTurns {
    fn for_stream(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = turns.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        if turns.len() >= MAX_TURN_ENTRIES {
            turns.retain(|_, turn| turn.strong_count() > 0);
        }
        let fresh = Arc::new(tokio::sync::Mutex::new(()));
        turns.insert(key, Arc::downgrade(&fresh));
        fresh
    }
}

/// Whether the stream is known to be new, so loading it can be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Existing,
    New,
}

impl Executor {
    pub fn new(store: Store, services: Services) -> Self {
        Self {
            store,
            services,
            turns: Arc::default(),
        }
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &Metadata,
    ) -> Result<Committed<A>, ExecuteError<A::Error>>
    where
        A: Aggregate<Services = Services>,
        A::Command: Clone,
    {
        self.execute_with::<A>(
            aggregate_id,
            command,
            metadata,
            Vec::new(),
            Stream::Existing,
        )
        .await
    }

    /// The aggregate as its stream stands in the log: for the rare reads
    /// that must see the log itself rather than a read row (RFC 7592's
    /// management of a client by its registration access token).
    pub async fn load<A>(&self, aggregate_id: &str) -> Result<A, String>
    where
        A: Aggregate<Services = Services>,
    {
        event_store::<A>(&self.store)
            .load_aggregate(aggregate_id)
            .await
            .map(|context| context.aggregate)
            .map_err(|e| e.to_string())
    }

    /// Runs a command whose events must commit together with `side_writes`.
    /// With `Stream::New` the first attempt skips loading: creations (a new
    /// grant per token request) cost one append and no read.
    pub async fn execute_with<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &Metadata,
        side_writes: Vec<SideWrite>,
        stream: Stream,
    ) -> Result<Committed<A>, ExecuteError<A::Error>>
    where
        A: Aggregate<Services = Services>,
        A::Command: Clone,
    {
        // New streams have fresh ids: nobody to wait for.
        let turn = (stream == Stream::Existing)
            .then(|| self.turns.for_stream(format!("{}/{aggregate_id}", A::TYPE)));
        let _my_turn = match &turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        let event_store = event_store::<A>(&self.store);
        let metadata = metadata.to_map();
        let mut assume_new = stream == Stream::New;
        for attempt in 1..=MAX_ATTEMPTS {
            let (mut aggregate, sequence) = if assume_new {
                (A::default(), 0)
            } else {
                let context = event_store
                    .load_aggregate(aggregate_id)
                    .await
                    .map_err(|e| ExecuteError::Unavailable(e.to_string()))?;
                (context.aggregate, context.current_sequence)
            };
            let sink = EventSink::<A>::default();
            aggregate
                .handle(command.clone(), &self.services, &sink)
                .await
                .map_err(ExecuteError::Rejected)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Committed {
                    events: Vec::new(),
                    cursor: None,
                    state: aggregate,
                });
            }
            // The sink applied each event as the aggregate wrote it.
            let decided = aggregate;
            let envelopes: Vec<EventEnvelope<A>> = events
                .into_iter()
                .enumerate()
                .map(|(offset, payload)| EventEnvelope {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence: sequence + offset + 1,
                    payload,
                    metadata: metadata.clone(),
                })
                .collect();
            let serialized = envelopes
                .iter()
                .map(serialize::<A>)
                .collect::<Result<Vec<_>, _>>()?;
            let mut writes = side_writes.clone();
            writes.extend(snapshot(
                aggregate_id,
                sequence,
                sequence + envelopes.len(),
                &decided,
            ));
            match self.store.append(serialized, writes).await {
                Ok(receipt) => {
                    return Ok(Committed {
                        events: envelopes,
                        cursor: receipt.cursor(),
                        state: decided,
                    })
                }
                Err(AppendError::Conflict) if attempt < MAX_ATTEMPTS => {
                    self.store.metrics().conflicts_retried.inc();
                    assume_new = false;
                }
                Err(AppendError::Conflict) => return Err(ExecuteError::Conflict),
                Err(AppendError::OutcomeUnknown) => return Err(ExecuteError::OutcomeUnknown),
                Err(AppendError::Unavailable(why) | AppendError::Rejected(why)) => {
                    return Err(ExecuteError::Unavailable(why))
                }
            }
        }
        Err(ExecuteError::Conflict)
    }
}

/// Aggregates whose streams grow without end, and how many events apart
/// their snapshots are: a Shared Signals stream records every batch its
/// receiver was told and every acknowledgement.
const SNAPSHOTTED: &[(&str, usize)] = &[("SsfStream", 64)];

fn snapshot_every<A: Aggregate>() -> Option<usize> {
    SNAPSHOTTED
        .iter()
        .find(|(aggregate_type, _)| *aggregate_type == A::TYPE)
        .map(|(_, every)| *every)
}

/// Loads from the latest snapshot and the events after it, for the
/// aggregates that have them; from every event for the rest.
fn event_store<A: Aggregate>(store: &Store) -> PersistedEventStore<WritRepository, A> {
    match snapshot_every::<A>() {
        Some(every) => PersistedEventStore::new_snapshot_store(store.repository(), every),
        None => PersistedEventStore::new_event_store(store.repository()),
    }
}

/// The snapshot to commit with the events that took the stream from
/// `before` to `after` events, when they crossed a multiple of its
/// interval.
fn snapshot<A: Aggregate>(
    aggregate_id: &str,
    before: usize,
    after: usize,
    state: &A,
) -> Option<SideWrite> {
    let every = snapshot_every::<A>()?;
    if after / every == before / every {
        return None;
    }
    Some(SideWrite::Snapshot {
        aggregate_type: A::TYPE.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        last_sequence: i64::try_from(after).ok()?,
        current_snapshot: i64::try_from(after / every).ok()?,
        payload: serde_json::to_string(state).ok()?,
    })
}

fn serialize<A: Aggregate>(
    envelope: &EventEnvelope<A>,
) -> Result<SerializedEvent, ExecuteError<A::Error>> {
    let to_value = |value: serde_json::Result<serde_json::Value>| {
        value.map_err(|e| ExecuteError::Unavailable(format!("event does not serialise: {e}")))
    };
    Ok(SerializedEvent {
        aggregate_id: envelope.aggregate_id.clone(),
        sequence: envelope.sequence,
        aggregate_type: A::TYPE.to_owned(),
        event_type: envelope.payload.event_type(),
        event_version: envelope.payload.event_version(),
        payload: to_value(serde_json::to_value(&envelope.payload))?,
        metadata: to_value(serde_json::to_value(&envelope.metadata))?,
    })
}
