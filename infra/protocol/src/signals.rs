//! What Writ's Shared Signals transmitter and the receivers that read it
//! agree on (OpenID SSF 1.0, CAEP 1.0, RISC 1.0): the event types, the
//! SET's `typ` and the names of the delivery methods and the scope.

/// A SET's `typ` (RFC 8417 §2.3).
pub const SET_TYPE: &str = "secevent+jwt";
/// The scope that makes a client a receiver.
pub const SCOPE: &str = "ssf.manage";
pub const PUSH: &str = "urn:ietf:rfc:8935";
pub const POLL: &str = "urn:ietf:rfc:8936";
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
pub const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
pub const ACCOUNT_ENABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
pub const ACCOUNT_PURGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-purged";
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
