//! Signed checkpoints over the global order (ADR 0017). A checkpoint seals
//! a prefix of the log: its last cursor, how many events it holds, and a
//! rolling hash over their chain hashes in log order, signed with Ed25519
//! under the key file's checkpoint key, which the database never holds.
//!
//! Per-stream chains show an altered or removed event inside a stream;
//! they cannot show a stream's newest event removed, the log's tail cut,
//! or an event rewritten with its stream's hashes recomputed. A checkpoint
//! shows all three for the prefix it seals. What came after the last
//! checkpoint is unsealed and reported as such.
//!
//! Sealing needs no lock and serialises no writer: the rolling hash is a
//! function of the prefix, so two sealers write the same answer, and only
//! events below PostgreSQL's global-order bound are sealed, which no later
//! commit can precede.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

use super::chain::{verify_chains, ChainBreak, GENESIS};
use super::conn::{Conn, Dialect, RowExt};
use super::reader::after_cursor;
use writ_domain::cursor::Cursor;

use super::statement::Statement;
use super::Store;
use crate::chain::sha256_hex;

const PAGE: i64 = 10_000;

/// The rolling hash after one more event.
pub fn roll(previous: &str, event_hash: &str) -> String {
    let mut input = String::with_capacity(130);
    input.push_str(previous);
    input.push('\n');
    input.push_str(event_hash);
    sha256_hex(input.as_bytes())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub cursor: String,
    pub event_count: i64,
    pub rolling_hash: String,
    pub signed_at: String,
    pub public_key: String,
    pub signature: String,
}

impl Checkpoint {
    fn message(cursor: &str, event_count: i64, rolling_hash: &str, signed_at: &str) -> String {
        format!("writ-checkpoint-v1\n{cursor}\n{event_count}\n{rolling_hash}\n{signed_at}")
    }

    fn signed_message(&self) -> String {
        Self::message(
            &self.cursor,
            self.event_count,
            &self.rolling_hash,
            &self.signed_at,
        )
    }
}

/// The key file's checkpoint key, an Ed25519 seed the database never holds.
pub type CheckpointSeed = [u8; 32];

fn signer(seed: &CheckpointSeed) -> Result<Ed25519KeyPair, SealError> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| SealError::Key("the key file's checkpoint key is not an Ed25519 seed".into()))
}

/// The checkpoint public key of a key file, as auditors pin it.
pub fn public_key(seed: &CheckpointSeed) -> Result<String, SealError> {
    Ok(URL_SAFE_NO_PAD.encode(signer(seed)?.public_key().as_ref()))
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Key(String),
    #[error("checkpoint table holds a bad cursor: {0}")]
    Cursor(String),
}

async fn checkpoints(store: &Store) -> Result<Vec<(Cursor, Checkpoint)>, SealError> {
    let rows = store
        .db()
        .fetch_all(&Statement::new(
            "SELECT cursor, event_count, rolling_hash, signed_at, public_key, signature FROM audit_checkpoints",
        ))
        .await?;
    let mut all = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |column: &str| row.text(column).unwrap_or_default();
        let checkpoint = Checkpoint {
            cursor: text("cursor"),
            event_count: row.int("event_count").unwrap_or(-1),
            rolling_hash: text("rolling_hash"),
            signed_at: text("signed_at"),
            public_key: text("public_key"),
            signature: text("signature"),
        };
        let cursor = checkpoint
            .cursor
            .parse::<Cursor>()
            .map_err(SealError::Cursor)?;
        all.push((cursor, checkpoint));
    }
    all.sort_by_key(|(cursor, _)| *cursor);
    Ok(all)
}

/// Chain hashes after `after` in log order; with `bounded`, only below
/// PostgreSQL's global-order bound.
async fn hashes_after(
    store: &Store,
    after: Cursor,
    bounded: bool,
) -> Result<Vec<(Cursor, String)>, SealError> {
    let columns = match store.dialect() {
        Dialect::Sqlite => "0 AS txid, position, hash",
        Dialect::Postgres => "txid::text::bigint AS txid, position, hash",
    };
    let statement = after_cursor(store.dialect(), columns, after, PAGE, bounded);
    Ok(store
        .db()
        .fetch_all(&statement)
        .await?
        .iter()
        .map(|row| {
            (
                Cursor {
                    txid: row.int("txid").unwrap_or(0),
                    position: row.int("position").unwrap_or(0),
                },
                row.text("hash").unwrap_or_default(),
            )
        })
        .collect())
}

/// Seals everything committed since the last checkpoint; `None` when
/// nothing new is there to seal.
pub async fn seal(store: &Store, seed: &CheckpointSeed) -> Result<Option<Checkpoint>, SealError> {
    let pair = signer(seed)?;
    let last = checkpoints(store).await?.pop();
    let (mut cursor, mut count, mut rolling) = match &last {
        Some((cursor, checkpoint)) => (
            *cursor,
            checkpoint.event_count,
            checkpoint.rolling_hash.clone(),
        ),
        None => (Cursor::default(), 0, GENESIS.to_owned()),
    };
    let start = cursor;
    loop {
        let page = hashes_after(store, cursor, true).await?;
        for (at, hash) in &page {
            rolling = roll(&rolling, hash);
            count += 1;
            cursor = *at;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    if cursor == start {
        return Ok(None);
    }
    let signed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let cursor = cursor.to_string();
    let signature = pair.sign(Checkpoint::message(&cursor, count, &rolling, &signed_at).as_bytes());
    let checkpoint = Checkpoint {
        cursor,
        event_count: count,
        rolling_hash: rolling,
        signed_at,
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        signature: URL_SAFE_NO_PAD.encode(signature.as_ref()),
    };
    // Another sealer may have sealed the same prefix: same answer, kept
    // once. A connection of its own: the pool may be read-only (SQLite).
    let mut conn = Conn::connect_beside_committer(store.target()).await?;
    let _turn = store.write_turn().await;
    conn.execute(&[Statement::new(
                "INSERT INTO audit_checkpoints (cursor, event_count, rolling_hash, signed_at, public_key, signature)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (cursor) DO NOTHING",
            )
            .text(checkpoint.cursor.clone())
            .int(checkpoint.event_count)
            .text(checkpoint.rolling_hash.clone())
            .text(checkpoint.signed_at.clone())
            .text(checkpoint.public_key.clone())
            .text(checkpoint.signature.clone())])
    .await?;
    Ok(Some(checkpoint))
}

/// One thing wrong with a checkpoint, and where the damage lies: after
/// the last checkpoint that held (or the log's start) and up to this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFailure {
    pub cursor: String,
    pub since: Option<String>,
    pub problem: String,
}

#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub events: u64,
    pub chain_breaks: Vec<ChainBreak>,
    pub checkpoints: usize,
    pub failures: Vec<CheckpointFailure>,
    /// The newest checkpoint, and how many events came after it.
    pub last_sealed: Option<String>,
    pub unsealed: u64,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.chain_breaks.is_empty() && self.failures.is_empty()
    }

    /// The report as `writ audit verify --json` and `/audit/verify` give it.
    pub fn to_json(&self, public_key: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "intact": self.intact(),
            "events": self.events,
            "chain_breaks": self.chain_breaks.iter().map(|b| serde_json::json!({
                "stream": format!("{}/{}", b.aggregate_type, b.aggregate_id),
                "sequence": b.sequence,
                "position": b.position,
            })).collect::<Vec<_>>(),
            "checkpoints": self.checkpoints,
            "checkpoint_public_key": public_key,
            "checkpoint_failures": self.failures.iter().map(|f| serde_json::json!({
                "cursor": f.cursor,
                "damage_after": f.since,
                "problem": f.problem,
            })).collect::<Vec<_>>(),
            "last_sealed": self.last_sealed,
            "unsealed_events": self.unsealed,
        })
    }
}

/// Checks every stream's chain and, beside it, walks the global order once
/// and holds each checkpoint against it: signature, count and rolling hash.
pub async fn verify(store: &Store, seed: &CheckpointSeed) -> Result<Verification, SealError> {
    let sealed = checkpoints(store).await?;
    // Two independent reads of the log, in stream order and in global
    // order: side by side, each on a connection of the pool.
    let chains = async { Ok::<_, SealError>(verify_chains(store.db()).await?) };
    let ((chain_breaks, events), walk) = tokio::try_join!(chains, walk(store, &sealed))?;
    let expected_key = public_key(seed)?;
    let verifier_key = URL_SAFE_NO_PAD
        .decode(&expected_key)
        .map_err(|e| SealError::Key(e.to_string()))?;
    let verifier = UnparsedPublicKey::new(&ED25519, verifier_key);
    let mut verification = Verification {
        events,
        chain_breaks,
        checkpoints: sealed.len(),
        last_sealed: walk.last_sealed,
        unsealed: walk.unsealed,
        ..Verification::default()
    };
    let mut since: Option<String> = None;
    let mut failures = Vec::new();
    for (_, checkpoint) in &sealed {
        let signature = URL_SAFE_NO_PAD
            .decode(&checkpoint.signature)
            .unwrap_or_default();
        if checkpoint.public_key != expected_key {
            failures.push(verification_failure(
                checkpoint,
                &since,
                "signed with a key other than this key file's".into(),
            ));
        } else if verifier
            .verify(checkpoint.signed_message().as_bytes(), &signature)
            .is_err()
        {
            failures.push(verification_failure(
                checkpoint,
                &since,
                "its signature does not verify: the checkpoint was altered".into(),
            ));
        }
        since = Some(checkpoint.cursor.clone());
    }
    failures.extend(walk.failures);
    verification.failures = failures;
    Ok(verification)
}

/// What the walk of the log in global order found against the signed
/// checkpoints.
#[derive(Default)]
struct Walk {
    failures: Vec<CheckpointFailure>,
    last_sealed: Option<String>,
    unsealed: u64,
}

/// Recomputes the rolling hash over the log in global order and meets
/// each checkpoint at its cursor: its count and rolling hash must match.
async fn walk(store: &Store, sealed: &[(Cursor, Checkpoint)]) -> Result<Walk, SealError> {
    let mut found = Walk::default();
    let failures = &mut found.failures;
    let (mut cursor, mut count, mut rolling) = (Cursor::default(), 0_i64, GENESIS.to_owned());
    let mut pending = sealed.iter().peekable();
    let mut since: Option<String> = None;
    loop {
        let page = hashes_after(store, cursor, false).await?;
        for (at, hash) in &page {
            // A checkpoint whose cursor the walk passed without meeting:
            // the event it ends with is gone.
            while let Some((_, checkpoint)) = pending.next_if(|(c, _)| c < at) {
                failures.push(verification_failure(checkpoint, &since, format!("the event at its cursor is missing; the log holds {count} events up to there")));
                since = Some(checkpoint.cursor.clone());
            }
            rolling = roll(&rolling, hash);
            count += 1;
            cursor = *at;
            if let Some((_, checkpoint)) = pending.next_if(|(c, _)| c == at) {
                if checkpoint.event_count != count {
                    failures.push(verification_failure(
                        checkpoint,
                        &since,
                        format!(
                            "it seals {} events; the log holds {count} up to its cursor",
                            checkpoint.event_count
                        ),
                    ));
                } else if checkpoint.rolling_hash != rolling {
                    failures.push(verification_failure(checkpoint, &since, "the events up to its cursor are not the ones it sealed (rolling hash differs)".into()));
                }
                since = Some(checkpoint.cursor.clone());
                found.last_sealed = Some(checkpoint.cursor.clone());
                found.unsealed = 0;
                continue;
            }
            found.unsealed += 1;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    for (_, checkpoint) in pending {
        failures.push(verification_failure(
            checkpoint,
            &since,
            format!("the log ends before it (at {count} events): its tail was cut"),
        ));
        since = Some(checkpoint.cursor.clone());
    }
    Ok(found)
}

fn verification_failure(
    checkpoint: &Checkpoint,
    since: &Option<String>,
    problem: String,
) -> CheckpointFailure {
    CheckpointFailure {
        cursor: checkpoint.cursor.clone(),
        since: since.clone(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rolling_hash_depends_on_every_hash_and_their_order() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let ab = roll(&roll(GENESIS, &a), &b);
        assert_ne!(ab, roll(&roll(GENESIS, &b), &a));
        assert_ne!(ab, roll(GENESIS, &a));
        assert_eq!(ab, roll(&roll(GENESIS, &a), &b));
    }
}
