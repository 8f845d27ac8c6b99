//! A subject's consent to one client: granted, extended as scopes grow,
//! withdrawn. Withdrawal's effect on grants is a cross-aggregate policy run
//! by the projector; the immediate effect comes from the inline status row.

mod aggregate;

pub use aggregate::{stream_id, Consent, ConsentCommand, ConsentError, ConsentEvent};

#[cfg(test)]
mod tests;
