//! The audit index: one row per event with its cursor, commit time,
//! aggregate, type, actor, client and subject, so auditors can filter the
//! log without decoding every payload.
//!
//! The rows are built by the database from the events table itself, one
//! `INSERT … SELECT` per range of the log: no payload crosses the wire and
//! none is parsed by Writ, which is what lets catch-up run near the
//! machine's bulk-insert rate.

use writ_infra::store::inline::ApplyError;
use writ_infra::store::statement::Statement;
use writ_infra::store::{Dialect, EventHeader};

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

/// Indexes the events at `positions` of `{log}.events` into
/// `{schema}.audit_index`. By position, not by a `(txid, position)` range:
/// a row-comparison range is an index bound on `txid` alone, so inside one
/// large transaction it would scan from the transaction's first event. Client and subject come from the event where it
/// names them (the payload is `{"<event type>": {…}}`); later grant and
/// session events do not repeat them, so those come from the inline
/// `grants` and `sessions` rows in the same schema (a rebuild reads its
/// own, written before this statement runs).
pub fn insert_events(dialect: Dialect, schema: &str, log: &str, positions: &[i64]) -> Statement {
    let listed = positions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let (cursor, recorded_at, actor, field, selected, positions) = match dialect {
        Dialect::Postgres => (
            "lpad(e.txid::text, 20, '0') || '-' || lpad(e.position::text, 20, '0')",
            "to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            "e.metadata ->> 'actor'",
            "(e.payload -> e.event_type ->> '{}')",
            "e.position = ANY($1::text::bigint[])",
            format!("{{{listed}}}"),
        ),
        Dialect::Sqlite => (
            "printf('%020d', e.position)",
            "e.recorded_at",
            "json_extract(e.metadata, '$.actor')",
            "json_extract(e.payload, '$.' || e.event_type || '.{}')",
            "e.position IN (SELECT value FROM json_each($1))",
            format!("[{listed}]"),
        ),
    };
    let sub = field.replace("{}", "sub");
    let client_id = field.replace("{}", "client_id");
    let sql = format!(
        "INSERT INTO {schema}.audit_index (position, cursor, recorded_at, aggregate_type, aggregate_id, event_type, actor, client_id, subject)
         SELECT e.position, {cursor}, {recorded_at}, e.aggregate_type, e.aggregate_id, e.event_type, {actor},
                coalesce(CASE e.aggregate_type WHEN 'Client' THEN e.aggregate_id WHEN 'Consent' THEN {client_id} END, g.client_id),
                coalesce(CASE WHEN e.aggregate_type IN ('Account', 'LoginDay', 'Consent', 'Session') THEN {sub} END, g.sub, s.sub)
         FROM {log}.events e
         LEFT JOIN {schema}.grants g ON e.aggregate_type = 'Grant' AND g.gid = e.aggregate_id
         LEFT JOIN {schema}.sessions s ON e.aggregate_type = 'Session' AND s.sid = e.aggregate_id
         WHERE {selected}"
    );
    Statement::new(sql).text(positions)
}
