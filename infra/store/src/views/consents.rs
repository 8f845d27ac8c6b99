//! What each person has consented to, per client.

use super::status;
use super::table;
use crate::statement::Statement;
use crate::Db;

table! {
    CONSENTS = "consents", columns consent {
        sub, client_id, scopes, status, granted_at, withdrawn_at, updated_at,
    }
    key [sub, client_id]
    lookups []
}

status!(ConsentStatus {
    Active = "active",
    Withdrawn = "withdrawn",
});

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRow {
    pub sub: String,
    pub client_id: String,
    pub scopes: String,
    #[sqlx(try_from = "String")]
    pub status: ConsentStatus,
    pub granted_at: String,
    pub withdrawn_at: Option<String>,
}

/// An active consent as the account page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GivenConsent {
    pub client_id: String,
    pub client_name: String,
    pub scopes: String,
    pub granted_at: String,
}

pub async fn find(db: &Db, sub: &str, client_id: &str) -> Result<Option<ConsentRow>, sqlx::Error> {
    db.fetch_row(
        &Statement::new(
            "SELECT sub, client_id, scopes, status, granted_at, withdrawn_at FROM consents \
             WHERE sub = $1 AND client_id = $2",
        )
        .text(sub)
        .text(client_id),
    )
    .await
}

/// A person's active consents, by client name.
pub async fn given_by(db: &Db, sub: &str) -> Result<Vec<GivenConsent>, sqlx::Error> {
    db.fetch_rows(
        &Statement::new(
            "SELECT c.client_id, cl.name AS client_name, c.scopes, c.granted_at FROM consents c \
             JOIN clients cl ON cl.client_id = c.client_id \
             WHERE c.sub = $1 AND c.status = $2 ORDER BY cl.name, c.client_id",
        )
        .text(sub)
        .text(ConsentStatus::Active.as_str()),
    )
    .await
}

/// Every client a person has ever consented to, withdrawn or not.
pub async fn clients_of(db: &Db, sub: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = db
        .fetch_rows(&Statement::new("SELECT client_id FROM consents WHERE sub = $1").text(sub))
        .await?;
    Ok(rows.into_iter().map(|(client_id,)| client_id).collect())
}
