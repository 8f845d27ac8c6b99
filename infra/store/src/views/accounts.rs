//! People's accounts, the username index and the subjects' data keys. The
//! personal fields are sealed with the subject's key (`writ_infra::personal`).

use super::status;
use super::table;
use crate::statement::Statement;
use crate::Db;

table! {
    ACCOUNTS = "accounts", columns account {
        sub, account_id, username, email, name, password_hash, status,
        created_at, credentials_changed_at, updated_at,
    }
    key [sub]
    lookups []
}

table! {
    USERNAMES = "usernames", columns username {
        account_id, sub,
    }
    key [account_id]
    lookups []
}

status!(AccountStatus {
    Active = "active",
    Disabled = "disabled",
    Forgotten = "forgotten",
});

/// An account with its subject's wrapped data key, if not forgotten.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub sub: String,
    pub account_id: String,
    /// Sealed, as are `email`, `name` and `password_hash`.
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub status: AccountStatus,
    pub created_at: String,
    pub credentials_changed_at: String,
    pub wrapped_key: Option<String>,
}

impl AccountRow {
    pub fn is_active(&self) -> bool {
        self.status == AccountStatus::Active
    }

    /// A sealed personal field by its column name.
    pub fn sealed(&self, field: &str) -> Option<&str> {
        match field {
            "username" => Some(&self.username),
            "email" => self.email.as_deref(),
            "name" => self.name.as_deref(),
            "password_hash" => Some(&self.password_hash),
            _ => None,
        }
    }
}

const SELECT: &str = "SELECT a.sub, a.account_id, a.username, a.email, a.name, a.password_hash, \
     a.status, a.created_at, a.credentials_changed_at, k.wrapped_key \
     FROM accounts a LEFT JOIN subject_keys k ON k.sub = a.sub";

/// The account a username's keyed hash names.
pub async fn by_account_id(db: &Db, account_id: &str) -> Result<Option<AccountRow>, sqlx::Error> {
    db.fetch_row(
        &Statement::new(format!(
            "{SELECT} JOIN usernames u ON u.sub = a.sub WHERE u.account_id = $1"
        ))
        .text(account_id),
    )
    .await
}

/// The subject a username's keyed hash names.
pub async fn sub_of(db: &Db, account_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = db
        .fetch_row(
            &Statement::new("SELECT sub FROM usernames WHERE account_id = $1").text(account_id),
        )
        .await?;
    Ok(row.map(|(sub,)| sub))
}

pub async fn by_sub(db: &Db, sub: &str) -> Result<Option<AccountRow>, sqlx::Error> {
    db.fetch_row(&Statement::new(format!("{SELECT} WHERE a.sub = $1")).text(sub))
        .await
}

/// Every account, oldest first.
pub async fn all(db: &Db) -> Result<Vec<AccountRow>, sqlx::Error> {
    db.fetch_rows(&Statement::new(format!(
        "{SELECT} ORDER BY a.created_at, a.sub"
    )))
    .await
}

/// Kept beside the events, in their transaction: a subject's data key is
/// not an event, so forgetting it can make the personal fields unreadable
/// while the log stays whole.
pub fn store_subject_key(sub: &str, wrapped_key: &str, created_at: &str) -> Statement {
    Statement::new("INSERT INTO subject_keys (sub, wrapped_key, created_at) VALUES ($1, $2, $3)")
        .text(sub)
        .text(wrapped_key)
        .text(created_at)
}

pub fn delete_subject_key(sub: &str) -> Statement {
    Statement::new("DELETE FROM subject_keys WHERE sub = $1").text(sub)
}
