//! One reader of the log per process for every revocation stream. Before
//! it, each idle stream polled the database every 50 ms from the start of
//! the log, so a hundred idle streams cost about a core. The reader is
//! woken by this process's commits (`Store::commits`) and looks for other
//! processes' commits every `revocation_feed_poll`; it broadcasts each
//! slice of the log that holds revocations, with every message's routing,
//! and each stream keeps what its client may see.
//!
//! A batch covers the log from `from` (exclusive) to `until` (inclusive):
//! every revocation in that range is in it, and the next batch starts where
//! this one ended, so a stream at `after >= from` misses nothing by taking
//! the batch's messages past `after`. A stream that finds `from > after`
//! (it lagged behind the channel, or joined before the reader's first
//! batch) reads the gap from the database itself.
//!
//! The reader starts at the head of the log as the first stream to catch
//! up found it, so no process reads the whole log for the feed unless a
//! client asks for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use writ_infra::revocations::{self, Routed};
use writ_store::Cursor;
use writ_store::Store;

/// Events read per look at the log.
pub const PAGE: i64 = 500;
/// Batches a stream may fall behind before it reads the gap itself.
const BACKLOG: usize = 256;

/// The feed's limits (`revocation_feed_*` settings).
#[derive(Debug, Clone, Copy)]
pub struct FeedLimits {
    /// Open streams per client, in this process.
    pub streams_per_client: u32,
    /// How often the reader looks for other processes' commits.
    pub poll: Duration,
    /// The longest an idle stream goes without checking its client.
    pub recheck: Duration,
}

pub struct Batch {
    pub from: Cursor,
    pub until: Cursor,
    pub messages: Vec<Routed>,
}

/// The shared reader and the count of open streams per client.
#[derive(Clone)]
pub struct RevocationFeed {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    limits: FeedLimits,
    batches: broadcast::Sender<Arc<Batch>>,
    reader: Once,
    open: Mutex<HashMap<String, u32>>,
    stopping: watch::Receiver<bool>,
}

/// One open stream's place under its client's cap; freed when the stream
/// is dropped (the client went away, or the stream ended).
pub struct Slot {
    inner: Arc<Inner>,
    client_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.client_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client_id);
            }
        }
    }
}

impl RevocationFeed {
    pub fn new(store: Store, limits: FeedLimits, stopping: watch::Receiver<bool>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                limits,
                batches: broadcast::channel(BACKLOG).0,
                reader: Once::new(),
                open: Mutex::new(HashMap::new()),
                stopping,
            }),
        }
    }

    pub fn limits(&self) -> FeedLimits {
        self.inner.limits
    }

    /// A place for one more stream of `client_id`, or `None` at the cap.
    pub fn admit(&self, client_id: &str) -> Option<Slot> {
        let mut open = self.inner.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(client_id.to_owned()).or_insert(0);
        if *count >= self.inner.limits.streams_per_client {
            if *count == 0 {
                open.remove(client_id);
            }
            return None;
        }
        *count += 1;
        Some(Slot {
            inner: self.inner.clone(),
            client_id: client_id.to_owned(),
        })
    }

    /// Subscribe before reading the backlog, so nothing broadcast while the
    /// stream reads it is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.inner.batches.subscribe()
    }

    /// Starts the reader at `head` the first time a stream catches up.
    pub fn start_at(&self, head: Cursor) {
        self.inner.reader.call_once(|| {
            tokio::spawn(read(self.inner.clone(), head));
        });
    }
}

async fn read(inner: Arc<Inner>, mut after: Cursor) {
    let store = &inner.store;
    let poll = inner.limits.poll;
    let mut commits = store.commits();
    let mut stopping = inner.stopping.clone();
    let mut from = after;
    loop {
        if *stopping.borrow() {
            return;
        }
        let headers = match store.headers_after(after, PAGE).await {
            Ok(headers) => headers,
            Err(err) => {
                tracing::warn!(error = %err, "revocation feed cannot read the log; retrying");
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        let Some(last) = headers.last().map(|header| header.cursor()) else {
            tokio::select! {
                changed = commits.changed() => {
                    // The committer is gone: fall back to polling alone.
                    if changed.is_err() {
                        tokio::time::sleep(poll).await;
                    }
                }
                _ = tokio::time::sleep(poll) => {}
                changed = stopping.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            continue;
        };
        let messages = match revocations::routed_for(store, &headers).await {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(error = %err, "revocation feed cannot read the log; retrying");
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        after = last;
        // Slices without revocations wake no stream; the next batch's
        // `from` covers them.
        if !messages.is_empty() {
            let batch = Batch {
                from,
                until: after,
                messages,
            };
            // No receiver is no error: streams come and go.
            let _ = inner.batches.send(Arc::new(batch));
            from = after;
        }
    }
}
