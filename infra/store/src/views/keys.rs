//! Signing keys: the public side as a read table, the sealed private side
//! beside the events (`signing_key_secrets`, never in the log).

use super::status;
use super::table;
use crate::statement::Statement;
use crate::Db;

table! {
    SIGNING_KEYS = "signing_keys", columns signing_key {
        kid, alg, public_jwk, status, generated_at, updated_at,
    }
    key [kid]
    lookups []
}

status!(KeyStatus {
    /// Generated, not yet signing.
    Generated = "generated",
    Active = "active",
    /// No longer signing; published while tokens it signed may live.
    Retired = "retired",
});

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    /// The public JWK as JSON.
    pub public_jwk: String,
    #[sqlx(try_from = "String")]
    pub status: KeyStatus,
    pub generated_at: String,
    pub updated_at: String,
    /// The sealed PKCS#8 private key.
    pub wrapped_private: Option<String>,
}

const SELECT: &str = "SELECT k.kid, k.alg, k.public_jwk, k.status, k.generated_at, k.updated_at, \
     s.wrapped_private FROM signing_keys k LEFT JOIN signing_key_secrets s ON s.kid = k.kid";

/// Every key with its sealed private side, last changed last: of two
/// active keys for one algorithm, the newest activation comes last.
pub async fn by_last_change(db: &Db) -> Result<Vec<KeyRow>, sqlx::Error> {
    db.fetch_rows(&Statement::new(format!("{SELECT} ORDER BY k.updated_at")))
        .await
}

/// Every key, oldest first.
pub async fn by_generation(db: &Db) -> Result<Vec<KeyRow>, sqlx::Error> {
    db.fetch_rows(&Statement::new(format!("{SELECT} ORDER BY k.generated_at")))
        .await
}

pub async fn active_kids(db: &Db, alg: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = db
        .fetch_rows(
            &Statement::new("SELECT kid FROM signing_keys WHERE status = $1 AND alg = $2")
                .text(KeyStatus::Active.as_str())
                .text(alg),
        )
        .await?;
    Ok(rows.into_iter().map(|(kid,)| kid).collect())
}

/// Written with the key's `Generated` event, in its transaction.
pub fn store_secret(kid: &str, wrapped_private: &str) -> Statement {
    Statement::new("INSERT INTO signing_key_secrets (kid, wrapped_private) VALUES ($1, $2)")
        .text(kid)
        .text(wrapped_private)
}
