//! Handing out status list indices (ADR 0031). Each issuing process opens
//! lists of its own (a `StatusList` stream each, so two processes never
//! share one) and gives every JWT access token the next index of its
//! current list, in an order scrambled by the list's own permutation so
//! that neighbouring indices say nothing about issuance order. An index is
//! never handed out twice: a list is used up, never reopened, and a process
//! that stops leaves the rest of its list unused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use writ_domain::status_list::{OpenList, StatusList};
use writ_domain::values::StatusSlot;
use writ_store::executor::Stream;
use writ_store::{Executor, Metadata};

/// Indices per list: a power of two (the permutation needs one), one bit
/// each, 128 KiB before compression. Large enough that a list serves a
/// busy process for minutes, small enough that a resource server holds a
/// few of them without noticing.
pub const LIST_SIZE: u32 = 1 << 20;

/// Where the query API serves a list.
pub const PATH: &str = "/statuslists";

/// A list's URI under the query API's public URL: the token's
/// `status.status_list.uri` and the list's `sub`.
fn uri(query_url: &str, list: &str) -> String {
    format!("{}{PATH}/{list}", query_url.trim_end_matches('/'))
}

/// The indices of one list, in the order of a keyed permutation of
/// `0..size`: a four-round Feistel network over the two halves of the
/// index, each round SipHash under this list's own random keys (kept in
/// memory only: a list is never reopened). Unlike an affine order, two
/// indices say nothing of how many tokens were issued between them.
struct Lease {
    list: String,
    size: u32,
    half_bits: u32,
    keys: std::collections::hash_map::RandomState,
    handed: u32,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("list", &self.list)
            .field("handed", &self.handed)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// `size` is a power of four, so the index splits into two halves.
    fn new(list: String, size: u32) -> Self {
        Self {
            list,
            size,
            half_bits: size.trailing_zeros() / 2,
            keys: std::collections::hash_map::RandomState::new(),
            handed: 0,
        }
    }

    fn scramble(&self, n: u32) -> u32 {
        use std::hash::BuildHasher;
        let mask = (1u32 << self.half_bits) - 1;
        let (mut left, mut right) = (n >> self.half_bits, n & mask);
        for round in 0u8..4 {
            let mixed = self.keys.hash_one((round, right)) as u32 & mask;
            (left, right) = (right, left ^ mixed);
        }
        (left << self.half_bits) | right
    }

    fn take(&mut self) -> Option<StatusSlot> {
        if self.handed >= self.size {
            return None;
        }
        let idx = self.scramble(self.handed);
        self.handed += 1;
        Some(StatusSlot {
            list: self.list.clone(),
            idx,
        })
    }
}

#[derive(Debug, Default)]
struct Leases {
    current: Option<Lease>,
    /// Opened ahead, so that the request that uses up a list never waits
    /// for the next one to be committed.
    spare: Option<Lease>,
}

pub struct StatusAllocator {
    leases: Mutex<Leases>,
    spare_wanted: Notify,
    size: u32,
    /// The query API's public URL, under which the lists are served.
    base: String,
}

impl StatusAllocator {
    /// Opens a first list and a spare, then keeps a spare open; the lists
    /// are served under `query_url`.
    pub async fn open(executor: Executor, query_url: &str) -> anyhow::Result<Arc<Self>> {
        Self::open_sized(executor, query_url, LIST_SIZE).await
    }

    pub async fn open_sized(
        executor: Executor,
        query_url: &str,
        size: u32,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            size.is_power_of_two() && size.trailing_zeros() % 2 == 0 && size > 1,
            "a status list's size is a power of four"
        );
        let allocator = Arc::new(Self {
            leases: Mutex::default(),
            spare_wanted: Notify::new(),
            size,
            base: query_url.to_owned(),
        });
        let first = allocator.open_list(&executor).await?;
        let spare = allocator.open_list(&executor).await?;
        *allocator.lock() = Leases {
            current: Some(first),
            spare: Some(spare),
        };
        tokio::spawn(keep_a_spare(allocator.clone(), executor));
        Ok(allocator)
    }

    /// A list's URI, as its opening recorded it.
    pub fn uri(&self, list: &str) -> String {
        uri(&self.base, list)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next free index; `None` only when this list and the spare are
    /// both used up and no new one could be opened yet.
    pub fn next(&self) -> Option<StatusSlot> {
        let mut leases = self.lock();
        loop {
            if let Some(slot) = leases.current.as_mut().and_then(Lease::take) {
                return Some(slot);
            }
            let spare = leases.spare.take()?;
            leases.current = Some(spare);
            self.spare_wanted.notify_one();
        }
    }
}

impl StatusAllocator {
    async fn open_list(&self, executor: &Executor) -> anyhow::Result<Lease> {
        let list = uuid::Uuid::now_v7().simple().to_string();
        let opening = OpenList {
            size: self.size,
            uri: uri(&self.base, &list),
        };
        executor
            .execute_with::<StatusList>(
                &list,
                opening,
                &Metadata::cli("status-lists"),
                Vec::new(),
                Stream::New,
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a status list: {e}"))?;
        Ok(Lease::new(list, self.size))
    }
}

/// Opens a new spare whenever the last one was taken; retried each second
/// while the store refuses. Lives as long as the process's issuing does.
async fn keep_a_spare(allocator: Arc<StatusAllocator>, executor: Executor) {
    loop {
        let wanted = allocator.lock().spare.is_none();
        if !wanted {
            allocator.spare_wanted.notified().await;
            continue;
        }
        match allocator.open_list(&executor).await {
            Ok(lease) => {
                let mut leases = allocator.lock();
                match leases.current {
                    None => leases.current = Some(lease),
                    Some(_) => leases.spare = Some(lease),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_lease_hands_out_every_index_once_and_not_in_order() {
        let mut lease = Lease::new("l".into(), 1 << 20);
        let mut seen = HashSet::new();
        let mut in_order = 0;
        let mut previous = None;
        while let Some(slot) = lease.take() {
            assert!(slot.idx < 1 << 20);
            assert!(seen.insert(slot.idx), "index {} twice", slot.idx);
            if previous.map(|p: u32| p + 1) == Some(slot.idx) {
                in_order += 1;
            }
            previous = Some(slot.idx);
        }
        assert_eq!(seen.len(), 1 << 20);
        // A random permutation has about one ascending neighbour in all.
        assert!(
            in_order < 100,
            "{in_order} indices followed their predecessor"
        );
    }
}
