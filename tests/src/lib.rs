//! End-to-end tests live in `e2e/`; this library holds what the
//! benchmarks share.

pub mod broker;
pub mod load;
pub mod node_oidc;
pub mod oha;
pub mod procfs;
pub mod soak;
pub mod token_endpoints;
pub mod writ_process;
pub mod wrk;
