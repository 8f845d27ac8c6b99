//! A subject's claims, decrypted under their data key: what userinfo and
//! id_tokens say about a person (OpenID Connect Core §5.4), and the name
//! Writ's own pages greet them by. A forgotten subject has no claims.

use serde_json::{json, Value};
use writ_domain::values::Sealed;

use crate::keys::KeyRing;
use crate::personal::SubjectKey;
use writ_store::views::accounts::{self, AccountRow};
use writ_store::Store;

/// `sub`, plus `name` for `profile` and `email` for `email`.
pub async fn for_scopes(
    store: &Store,
    key_ring: &KeyRing,
    sub: &str,
    scopes: &[&str],
) -> Result<Value, sqlx::Error> {
    let fields = Fields::read(store, key_ring, sub).await?;
    let mut claims = json!({ "sub": sub });
    if scopes.contains(&"profile") {
        if let Some(name) = fields.open("name") {
            claims["name"] = Value::String(name);
        }
    }
    if scopes.contains(&"email") {
        if let Some(email) = fields.open("email") {
            claims["email"] = Value::String(email);
        }
    }
    Ok(claims)
}

/// The username, for "signed in as …" on Writ's pages.
pub async fn username(
    store: &Store,
    key_ring: &KeyRing,
    sub: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(Fields::read(store, key_ring, sub).await?.open("username"))
}

struct Fields {
    account: Option<AccountRow>,
    key: Option<SubjectKey>,
}

impl Fields {
    async fn read(store: &Store, key_ring: &KeyRing, sub: &str) -> Result<Self, sqlx::Error> {
        let account = accounts::by_sub(store.db(), sub).await?;
        let key = account
            .as_ref()
            .and_then(|account| account.wrapped_key.as_deref())
            .and_then(|wrapped| SubjectKey::unwrap(sub, wrapped, key_ring).ok());
        Ok(Self { account, key })
    }

    fn open(&self, field: &str) -> Option<String> {
        let sealed = self.account.as_ref()?.sealed(field)?;
        self.key.as_ref()?.open(field, &Sealed(sealed.to_owned()))
    }
}
