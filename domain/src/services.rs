//! Time and randomness as inputs, so aggregates stay deterministic under test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Identifiers an aggregate mints itself (a subject's `sub`, a token's `jti`).
/// Secrets and tokens are not minted here: the caller must see them once,
/// and an aggregate can only return events.
pub trait Randomness: Send + Sync {
    fn uuid(&self) -> String;
}

#[derive(Clone)]
pub struct Services {
    pub clock: Arc<dyn Clock>,
    pub randomness: Arc<dyn Randomness>,
}

impl Services {
    pub fn new(clock: Arc<dyn Clock>, randomness: Arc<dyn Randomness>) -> Self {
        Self { clock, randomness }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// A clock that stands still until moved: for tests.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(time: DateTime<Utc>) -> Self {
        Self(Mutex::new(time))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Predictable identifiers (`id-1`, `id-2`, …): for tests.
#[derive(Default)]
pub struct SequentialIds(AtomicU64);

impl Randomness for SequentialIds {
    fn uuid(&self) -> String {
        format!("id-{}", self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use chrono::TimeZone;

    pub fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    pub fn services() -> Services {
        services_at(t0())
    }

    pub fn services_at(time: DateTime<Utc>) -> Services {
        Services::new(
            Arc::new(FixedClock::at(time)),
            Arc::new(SequentialIds::default()),
        )
    }
}
