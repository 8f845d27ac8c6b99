//! Per-process throttling of failed authentications, decided before any
//! secret is checked. Replicas each keep their own counts, so N replicas
//! allow N times the limit (documented).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Beyond this many tracked keys, expired windows are swept; the map never
/// grows without bound under a spray of unknown ids.
const MAX_TRACKED: usize = 50_000;

#[derive(Clone)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Arc::default(),
        }
    }

    /// `Err(seconds)` while `key` has used up its failures in the window.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        match failures.get(key) {
            Some((start, count)) if *count >= self.limit && start.elapsed() < self.window => {
                Err((self.window - start.elapsed()).as_secs() + 1)
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_TRACKED {
            let window = self.window;
            failures.retain(|_, (start, _)| start.elapsed() < window);
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let now = Instant::now();
        let entry = failures.entry(key.to_owned()).or_insert((now, 0));
        if entry.0.elapsed() >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
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
}
