//! Token status lists (ADR 0031): a revocation marks each revoked JWT
//! access token of its grant INVALID in `status_invalid`, in the
//! projection's own transaction. The token rows say which tokens the
//! revocation reached (the inline apply marked them revoked in the
//! revocation's commit) and where each one's bit is; a revoked token never
//! becomes valid again, so the rows only ever grow and a replay of the
//! same revocation changes nothing.

use writ_store::inline::timestamp;
use writ_store::statement::Statement;
use writ_store::{Conn, EventHeader};

use crate::ProjectorError;

const REVOCATIONS: &[&str] = &["GrantRevoked", "AccessTokenRevoked"];
/// Tokens that expired longer ago than this are refused by their `exp`
/// everywhere (clock skew included): their bits would only swell the list.
const EXPIRED_FOR: chrono::Duration = chrono::Duration::minutes(5);

/// Whether any of `headers` may set a status bit.
pub fn any(headers: &[EventHeader]) -> bool {
    headers.iter().any(flips_bits)
}

fn flips_bits(header: &EventHeader) -> bool {
    header.aggregate_type == "Grant" && REVOCATIONS.contains(&header.event_type.as_str())
}

/// A grant refreshed every few minutes for a month has minted thousands
/// of access tokens, and its revocation marks them all revoked: only the
/// ones that can still be presented get a bit.
pub async fn flip(
    conn: &mut Conn,
    schema: &str,
    headers: &[EventHeader],
) -> Result<(), ProjectorError> {
    let live_after = timestamp(&(chrono::Utc::now() - EXPIRED_FOR));
    let flips: Vec<Statement> = headers
        .iter()
        .filter(|header| flips_bits(header))
        .map(|header| {
            Statement::new(format!(
                "INSERT INTO {schema}.status_invalid (list_id, idx) \
                 SELECT status_list, CAST(status_idx AS bigint) FROM {schema}.tokens \
                 WHERE gid = $1 AND status = 'revoked' AND status_list IS NOT NULL \
                 AND expires_at > $2 ON CONFLICT DO NOTHING"
            ))
            .text(&header.aggregate_id)
            .text(&live_after)
        })
        .collect();
    if !flips.is_empty() {
        conn.execute(&flips).await?;
    }
    Ok(())
}
