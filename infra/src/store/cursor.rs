//! Log cursors: one fixed-width string per position, whose string order is
//! log order, so users and tools can compare and store them as text.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The global position, assigned in commit order inside the writing
    /// transaction (SQLite). PostgreSQL adds the transaction id in front.
    pub position: i64,
}

pub const START: Cursor = Cursor { position: 0 };

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.position)
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let valid = raw.len() == 20 && raw.bytes().all(|b| b.is_ascii_digit());
        valid
            .then(|| raw.parse::<i64>().ok())
            .flatten()
            .map(|position| Cursor { position })
            .ok_or_else(|| format!("{raw:?} is not a cursor (20 digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_order_is_log_order() {
        let (a, b) = (Cursor { position: 9 }, Cursor { position: 10 });
        assert!(a.to_string() < b.to_string());
        assert_eq!(b.to_string().parse::<Cursor>(), Ok(b));
        assert!("12".parse::<Cursor>().is_err());
    }
}
