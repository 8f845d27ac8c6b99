//! Readers that wake only for some event types (a held Shared Signals
//! poll, the pusher): a busy log of other events would otherwise wake them
//! on every batch.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::committer::{AppendError, AppendReceipt};
use crate::{Cursor, START};

/// The registered readers, shared by the store and its committer.
#[derive(Clone, Default)]
pub(crate) struct Watchers(Arc<Mutex<Vec<Watcher>>>);

struct Watcher {
    event_types: &'static [&'static str],
    sender: watch::Sender<Cursor>,
}

impl Watchers {
    pub fn subscribe(&self, event_types: &'static [&'static str]) -> watch::Receiver<Cursor> {
        let mut watchers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(watcher) = watchers
            .iter()
            .find(|w| std::ptr::eq(w.event_types, event_types))
        {
            return watcher.sender.subscribe();
        }
        let (sender, receiver) = watch::channel(START);
        watchers.push(Watcher {
            event_types,
            sender,
        });
        receiver
    }

    pub(crate) fn notify(&self, outcomes: &[Result<AppendReceipt, AppendError>], last: Cursor) {
        let watchers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for watcher in watchers.iter() {
            let wanted = outcomes.iter().flatten().any(|receipt| {
                receipt
                    .stored
                    .iter()
                    .any(|event| watcher.event_types.contains(&event.event_type.as_str()))
            });
            if wanted {
                watcher.sender.send_replace(last);
            }
        }
    }
}
