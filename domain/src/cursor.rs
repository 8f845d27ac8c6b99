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

/// `value` as 20 digits, zero-padded; a negative value (which no cursor
/// holds) through `fmt`'s own padding.
fn twenty_digits(value: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Ok(mut rest) = u64::try_from(value) else {
        return write!(f, "{value:020}");
    };
    // Digit by digit: `{:020}` pads one `write_char` at a time, and a bulk
    // replay writes two cursors per event.
    let mut digits = [b'0'; 20];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.txid != 0 {
            twenty_digits(self.txid, f)?;
            f.write_str("-")?;
        }
        twenty_digits(self.position, f)
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
            // A transaction id of zero is written without its part, so
            // its two-part spelling would be a second name for one place.
            Some((txid, position)) => digits(txid)
                .filter(|txid| *txid != 0)
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
        // A second spelling of one place (the log_cursor fuzz target's round trip).
        assert!(format!("{:020}-{:020}", 0, 5).parse::<Cursor>().is_err());
        let widest = Cursor {
            txid: 33_343,
            position: i64::MAX,
        };
        assert_eq!(
            widest.to_string(),
            "00000000000000033343-09223372036854775807"
        );
        assert_eq!(Cursor::sqlite(-5).to_string(), format!("{:020}", -5));
    }
}
