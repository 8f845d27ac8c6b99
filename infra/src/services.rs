//! The production clock and randomness behind the domain's services.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use writ_domain::{Clock, Randomness, Services};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// UUID v4 from the OS CSPRNG (uuid's `v4` uses `getrandom`).
pub struct OsRandomness;

impl Randomness for OsRandomness {
    fn uuid(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

pub fn system() -> Services {
    Services::new(Arc::new(SystemClock), Arc::new(OsRandomness))
}
