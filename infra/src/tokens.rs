//! Finding a presented token in the inline read rows, and deciding whether
//! it is active. One indexed lookup joins the token, its grant, the client
//! and the account, all written in the events' own transaction, so the
//! answer is never staler than the last response sent.

use chrono::{DateTime, Utc};
use writ_domain::values::ResourceUri;

use crate::crypto::sha256_hex;
use crate::signing::{jwt, KeySet};
use crate::store::inline::timestamp;
use crate::store::statement::Statement;
use crate::store::{RowExt, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
    Code,
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The `tokens` row key: the token's hash, or `jti:<jti>` for a JWT.
    pub key: String,
    pub kind: Kind,
    pub gid: String,
    pub jti: Option<String>,
    pub scopes: String,
    pub issued_at: String,
    pub expires_at: String,
    pub client_id: String,
    pub sub: Option<String>,
    pub audience: Vec<String>,
    pub cursor: String,
    active_at: ActiveInputs,
}

#[derive(Debug, Clone)]
struct ActiveInputs {
    token_status: String,
    grant_status: String,
    grant_created_at: String,
    client_status: String,
    account_status: Option<String>,
    credentials_changed_at: Option<String>,
    consent_withdrawn_at: Option<String>,
}

impl TokenRecord {
    /// Active: the token, its grant, its client and its account are all
    /// live, it has not expired, and the account's password has not
    /// changed since the grant began (R31).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        let a = &self.active_at;
        self.kind != Kind::Code
            && a.token_status == "active"
            && a.grant_status == "active"
            && self.holder_is_live()
            && self.expires_at > timestamp(&now)
    }

    /// The client is enabled, and the account (if any) is enabled, has
    /// not changed its password since the grant began, and has not
    /// withdrawn its consent to this client since then.
    pub fn holder_is_live(&self) -> bool {
        let a = &self.active_at;
        let since_grant = |instant: Option<&str>| {
            instant.is_none_or(|changed| a.grant_created_at.as_str() >= changed)
        };
        let account_ok = match &self.sub {
            None => true,
            Some(_) => {
                a.account_status.as_deref() == Some("active")
                    && a.credentials_changed_at.is_some()
                    && since_grant(a.credentials_changed_at.as_deref())
                    && since_grant(a.consent_withdrawn_at.as_deref())
            }
        };
        a.client_status == "active" && account_ok
    }

    /// RFC 7662 §4 and RFC 9068: the token's own client, or, for access
    /// tokens, a client its audience names, by client id or by one of the
    /// RFC 8707 resource URIs the client answers for. Refresh tokens are
    /// the client's alone.
    pub fn may_be_seen_by(&self, client_id: &str, resources: &[ResourceUri]) -> bool {
        self.client_id == client_id
            || (self.kind == Kind::Access
                && self
                    .audience
                    .iter()
                    .any(|aud| aud == client_id || resources.iter().any(|r| r.as_str() == aud)))
    }
}

const LOOKUP: &str = "SELECT t.token_key, t.kind, t.gid, t.jti, coalesce(t.scopes, g.scopes) AS scopes, t.issued_at, t.expires_at, \
  t.status AS token_status, g.client_id, g.sub, g.audience, g.cursor, g.status AS grant_status, \
  g.created_at AS grant_created_at, c.status AS client_status, a.status AS account_status, \
  a.credentials_changed_at, cs.withdrawn_at AS consent_withdrawn_at \
  FROM tokens t JOIN grants g ON g.gid = t.gid JOIN clients c ON c.client_id = g.client_id \
  LEFT JOIN accounts a ON a.sub = g.sub \
  LEFT JOIN consents cs ON cs.sub = g.sub AND cs.client_id = g.client_id WHERE t.token_key = $1";

/// Tokens longer than this were never issued by Writ.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The row key a presented token would have: a verified JWT's `jti`, or the
/// SHA-256 of an opaque token. A JWT whose signature fails is unknown.
pub async fn key_of(keys: &KeySet, presented: &str) -> Option<String> {
    if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
        return None;
    }
    if jwt::looks_like_jwt(presented) {
        let verified = keys.verify(presented).await?;
        return verified.claims["jti"]
            .as_str()
            .map(|jti| format!("jti:{jti}"));
    }
    Some(sha256_hex(presented.as_bytes()))
}

/// `Ok(None)` for a token Writ does not know; `Err` when the store is down.
pub async fn find(
    store: &Store,
    keys: &KeySet,
    presented: &str,
) -> Result<Option<TokenRecord>, sqlx::Error> {
    let Some(key) = key_of(keys, presented).await else {
        return Ok(None);
    };
    let Some(row) = store
        .db()
        .fetch_optional(&Statement::new(LOOKUP).text(key))
        .await?
    else {
        return Ok(None);
    };
    let text = |column: &str| row.text(column).unwrap_or_default();
    let kind = match text("kind").as_str() {
        "access" => Kind::Access,
        "refresh" => Kind::Refresh,
        _ => Kind::Code,
    };
    Ok(Some(TokenRecord {
        key: text("token_key"),
        kind,
        gid: text("gid"),
        jti: row.text("jti"),
        scopes: text("scopes"),
        issued_at: text("issued_at"),
        expires_at: text("expires_at"),
        client_id: text("client_id"),
        sub: row.text("sub"),
        audience: serde_json::from_str(&text("audience")).unwrap_or_default(),
        cursor: text("cursor"),
        active_at: ActiveInputs {
            token_status: text("token_status"),
            grant_status: text("grant_status"),
            grant_created_at: text("grant_created_at"),
            client_status: text("client_status"),
            account_status: row.text("account_status"),
            credentials_changed_at: row.text("credentials_changed_at"),
            consent_withdrawn_at: row.text("consent_withdrawn_at"),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, audience: &[&str]) -> TokenRecord {
        TokenRecord {
            key: "k".into(),
            kind,
            gid: "g".into(),
            jti: None,
            scopes: String::new(),
            issued_at: String::new(),
            expires_at: String::new(),
            client_id: "app".into(),
            sub: None,
            audience: audience.iter().map(|a| (*a).to_owned()).collect(),
            cursor: String::new(),
            active_at: ActiveInputs {
                token_status: "active".into(),
                grant_status: "active".into(),
                grant_created_at: String::new(),
                client_status: "active".into(),
                account_status: None,
                credentials_changed_at: None,
                consent_withdrawn_at: None,
            },
        }
    }

    #[test]
    fn a_resource_server_sees_access_tokens_for_its_resources_only() {
        let api = [ResourceUri::parse("https://api.example/").unwrap_or_else(|e| panic!("{e}"))];
        let for_api = record(Kind::Access, &["https://api.example/"]);
        assert!(for_api.may_be_seen_by("app", &[]), "its own client");
        assert!(for_api.may_be_seen_by("rs", &api), "a listed resource");
        assert!(!for_api.may_be_seen_by("rs", &[]), "no resources");
        let other =
            [ResourceUri::parse("https://api.example/v2").unwrap_or_else(|e| panic!("{e}"))];
        assert!(!for_api.may_be_seen_by("rs", &other), "exact match only");
        assert!(
            record(Kind::Access, &["rs"]).may_be_seen_by("rs", &[]),
            "by client id"
        );
        let refresh = record(Kind::Refresh, &["https://api.example/"]);
        assert!(
            !refresh.may_be_seen_by("rs", &api),
            "refresh tokens stay the client's"
        );
    }
}
