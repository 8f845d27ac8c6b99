//! A person who can sign in. The aggregate id is the keyed hash of the
//! normalised username, so the stream itself enforces uniqueness; every
//! personal field arrives sealed under the subject's data key.

mod aggregate;
mod event;

pub use aggregate::{Account, AccountCommand, AccountError, AccountStatus};
pub use event::AccountEvent;

#[cfg(test)]
mod tests;
