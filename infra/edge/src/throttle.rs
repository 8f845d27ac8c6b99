//! Per-process counts of failed authentications, each in a bounded map of
//! its own. What a count may do is the caller's rule (R73, ADR 0011): a
//! correct client secret or password is never refused because of it.
//! Replicas each keep their own counts, so N replicas allow N times the
//! limit (documented).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Keys one map tracks. Beyond it the key that failed least recently is
/// forgotten, so a spray of made-up ids costs the attacker's own keys
/// first and never wipes the counts of a name under attack, which fails
/// again and again and so stays recent.
pub const DEFAULT_CAPACITY: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Clone)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Arc<Mutex<LruCache<String, Window>>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::bounded(limit, window, DEFAULT_CAPACITY)
    }

    pub fn bounded(limit: u32, window: Duration, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            limit: limit.max(1),
            window,
            failures: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Failures of `key` in its current window.
    pub fn failures(&self, key: &str) -> u32 {
        let Ok(failures) = self.failures.lock() else {
            return 0;
        };
        failures
            .peek(key)
            .filter(|w| w.started.elapsed() < self.window)
            .map_or(0, |w| w.failures)
    }

    /// `Err(seconds)` while `key` has used up its failures in the window.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        match failures.peek(key) {
            Some(w) if w.failures >= self.limit && w.started.elapsed() < self.window => {
                Err((self.window.saturating_sub(w.started.elapsed())).as_secs() + 1)
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        let fresh = Window {
            started: now,
            failures: 0,
        };
        let window = failures.get_or_insert_mut(key.to_owned(), || fresh);
        if window.started.elapsed() >= self.window {
            *window = fresh;
        }
        window.failures += 1;
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.lock().map_or(0, |f| f.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_blocks_until_the_window_ends() {
        let throttle = Throttle::new(2, Duration::from_millis(200));
        throttle.record_failure("c");
        assert!(throttle.check("c").is_ok());
        throttle.record_failure("c");
        assert!(throttle.check("c").is_err());
        assert!(throttle.check("other").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(throttle.check("c").is_ok());
    }

    #[test]
    fn a_spray_of_new_keys_forgets_the_stalest_not_the_name_under_attack() {
        let throttle = Throttle::bounded(3, Duration::from_secs(60), 100);
        for _ in 0..3 {
            throttle.record_failure("victim");
        }
        for n in 0..10_000 {
            throttle.record_failure(&format!("spray-{n}"));
            if n % 50 == 0 {
                // The name under attack keeps failing, so it stays recent.
                throttle.record_failure("victim");
            }
        }
        assert_eq!(throttle.tracked(), 100, "the map stays bounded");
        assert!(throttle.check("victim").is_err(), "its lockout survived");
        assert_eq!(throttle.failures("spray-0"), 0, "the stalest was evicted");
    }
}
