//! The audit index: one row per event with its cursor, commit time,
//! aggregate, type, actor, client and subject, so auditors can filter the
//! log without decoding every payload. The database builds the rows from
//! the events table itself ([`writ_store::views::audit_index_rows`]); this
//! side only refuses an event this version cannot read.

use writ_store::inline::ApplyError;
use writ_store::EventHeader;

pub use writ_store::views::{audit_index_rows, audit_subject_backfill, SUBJECT_ARRIVES};

/// Events this version cannot read stop the projection there.
pub fn check_known(header: &EventHeader) -> Result<(), ApplyError> {
    if writ_domain::catalog::is_known(
        &header.aggregate_type,
        &header.event_type,
        &header.event_version,
    ) {
        Ok(())
    } else {
        Err(ApplyError::Unknown {
            aggregate_type: header.aggregate_type.clone(),
            event_type: header.event_type.clone(),
            event_version: header.event_version.clone(),
            position: header.position,
        })
    }
}
