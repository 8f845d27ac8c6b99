//! Log cursors: one fixed-width string per place in the global order, whose
//! string order is log order, so users and tools can compare and store them
//! as text.
//!
//! On SQLite the order is the `position` column alone (20 digits). On
//! PostgreSQL it is `(txid, position)`: the writing transaction's id, then
//! the identity value (`TXID-POSITION`, 20 digits each).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The writing transaction's id on PostgreSQL; 0 on SQLite.
    pub txid: i64,
    pub position: i64,
}

pub const START: Cursor = Cursor {
    txid: 0,
    position: 0,
};

impl Cursor {
    pub fn sqlite(position: i64) -> Self {
        Self { txid: 0, position }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.txid == 0 {
            write!(f, "{:020}", self.position)
        } else {
            write!(f, "{:020}-{:020}", self.txid, self.position)
        }
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let digits = |part: &str| {
            (part.len() == 20 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<i64>().ok())
                .flatten()
        };
        let parsed = match raw.split_once('-') {
            None => digits(raw).map(Cursor::sqlite),
            Some((txid, position)) => digits(txid)
                .zip(digits(position))
                .map(|(txid, position)| Cursor { txid, position }),
        };
        parsed.ok_or_else(|| format!("{raw:?} is not a cursor (20 digits, or 20 digits-20 digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_order_is_log_order() {
        let (a, b) = (Cursor::sqlite(9), Cursor::sqlite(10));
        assert!(a.to_string() < b.to_string());
        assert_eq!(b.to_string().parse::<Cursor>(), Ok(b));
        let (c, d) = (
            Cursor {
                txid: 900,
                position: 20,
            },
            Cursor {
                txid: 1000,
                position: 3,
            },
        );
        assert!(c < d && c.to_string() < d.to_string());
        assert_eq!(d.to_string().parse::<Cursor>(), Ok(d));
        assert!("12".parse::<Cursor>().is_err());
    }
}
