//! End-to-end tests: the real `writ` binary, built from the current
//! sources by the harness, run as separate processes on temporary data
//! directories. One test binary, because linking is the slow part.

mod attacks;
mod audit;
mod audit_api;
mod authorize_attacks;
mod broker;
mod browser;
mod chromium;
mod cli;
mod client_management;
mod clock_skew;
mod code_flow;
mod demo;
mod display_and_logout;
mod faults;
mod harness;
mod leaks;
mod migrate;
mod oauth;
mod openapi;
mod page_attacks;
mod par;
mod privacy;
mod private_key_jwt;
mod projector_faults;
mod refresh;
mod registration;
mod replay;
mod revocation_consent;
mod revocation_duplicates;
mod revocation_faults;
mod revocation_feed;
mod revocation_feed_scope;
mod revocation_stream;
mod schema;
mod serve;
mod shutdown;
mod slow_clients;
mod split;
mod swap;
mod tamper;
mod terminal_grants;
mod throttles;
mod tokens;
mod upgrade;
