//! Finding a presented token in the inline read rows, and deciding whether
//! it is active. One indexed lookup joins the token, its grant, the client
//! and the account, all written in the events' own transaction, so the
//! answer is never staler than the last response sent.

use chrono::{DateTime, Utc};
use writ_domain::liveness::{self, Holder, Person, Token};
use writ_domain::values::ResourceUri;

use crate::crypto::sha256_hex;
use crate::signing::{jwt, KeySet};
use writ_store::memory::{Fresh, Memory};
use writ_store::views::accounts::AccountStatus;
use writ_store::views::clients::ClientStatus;
use writ_store::views::grants::{self, GrantStatus};
pub use writ_store::views::tokens::TokenKind;
use writ_store::views::tokens::{self as view, TokenLookup, TokenStatus};
use writ_store::Store;

#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The `tokens` row key: the token's hash, or `jti:<jti>` for a JWT.
    pub key: String,
    pub kind: TokenKind,
    pub gid: String,
    pub jti: Option<String>,
    pub scopes: String,
    pub issued_at: String,
    pub expires_at: String,
    pub client_id: String,
    pub sub: Option<String>,
    pub audience: Vec<String>,
    /// RFC 9449: the DPoP key an access token is bound to (`cnf.jkt`).
    pub jkt: Option<String>,
    /// RFC 8693 §4.1: who acts for the subject, for an exchanged grant.
    pub act: Option<serde_json::Value>,
    /// An exchanged grant's ancestors, the root first.
    pub ancestors: Vec<String>,
    /// The grant, or one it descends from, is revoked (a denied device
    /// grant included).
    pub grant_revoked: bool,
    pub cursor: String,
    token: Token,
    holder: Holder,
}

/// A read-table timestamp, or `otherwise` when it does not parse. Each
/// caller picks the instant that makes the token not live: the earliest
/// for an expiry or a grant's start, the latest for a password change or
/// a consent withdrawal.
fn instant(text: &str, otherwise: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map_or(otherwise, |at| at.with_timezone(&Utc))
}

/// What a grant's row says of whoever it speaks for, as the read tables
/// hold it: its client's status, its start, and its person's account,
/// credentials change and consent withdrawal (all absent for a client
/// acting for itself).
struct HolderFacts<'a> {
    client_status: ClientStatus,
    grant_created_at: &'a str,
    sub: Option<&'a str>,
    account_status: Option<AccountStatus>,
    credentials_changed_at: Option<&'a str>,
    consent_withdrawn_at: Option<&'a str>,
}

impl HolderFacts<'_> {
    fn holder(&self) -> Holder {
        let person = match (self.sub, &self.account_status, self.credentials_changed_at) {
            (None, _, _) => Person::None,
            (Some(_), Some(status), Some(changed)) => Person::Account {
                enabled: *status == AccountStatus::Active,
                credentials_changed_at: instant(changed, DateTime::<Utc>::MAX_UTC),
                consent_withdrawn_at: self
                    .consent_withdrawn_at
                    .map(|at| instant(at, DateTime::<Utc>::MAX_UTC)),
            },
            (Some(_), _, _) => Person::Missing,
        };
        Holder {
            client_enabled: self.client_status == ClientStatus::Active,
            grant_created_at: instant(self.grant_created_at, DateTime::<Utc>::MIN_UTC),
            person,
        }
    }
}

impl TokenRecord {
    fn from_lookup(row: TokenLookup) -> Self {
        let holder = HolderFacts {
            client_status: row.client_status,
            grant_created_at: &row.grant_created_at,
            sub: row.sub.as_deref(),
            account_status: row.account_status(),
            credentials_changed_at: row.credentials_changed_at.as_deref(),
            consent_withdrawn_at: row.consent_withdrawn_at.as_deref(),
        }
        .holder();
        let token = Token {
            // A kind this Writ does not write is never a token it answers for.
            is_code: !matches!(row.kind, TokenKind::Access | TokenKind::Refresh),
            token_active: row.token_status == TokenStatus::Active,
            grant_active: row.grant_status == GrantStatus::Active,
            expires_at: instant(&row.expires_at, DateTime::<Utc>::MIN_UTC),
        };
        Self {
            grant_revoked: row.grant_status == GrantStatus::Revoked,
            audience: serde_json::from_str(&row.audience).unwrap_or_default(),
            act: row
                .act
                .as_deref()
                .and_then(|act| serde_json::from_str(act).ok()),
            // Unreadable ancestors would hide a revocation: one that names
            // no grant is never found, so the check fails closed.
            ancestors: row.ancestors.as_deref().map_or_else(Vec::new, |text| {
                serde_json::from_str(text).unwrap_or_else(|_| vec![String::new()])
            }),
            jkt: row.jkt,
            key: row.token_key,
            kind: row.kind,
            gid: row.gid,
            jti: row.jti,
            scopes: row.scopes,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            client_id: row.client_id,
            sub: row.sub,
            cursor: row.cursor,
            token,
            holder,
        }
    }

    /// See [`liveness::token_is_live`].
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        liveness::token_is_live(&self.token, &self.holder, now)
    }

    /// When it expires; unreadable, the earliest instant (expired).
    pub fn expiry(&self) -> DateTime<Utc> {
        self.token.expires_at
    }

    /// Not revoked, rotated or spent: a redeemed code or device code is
    /// not, whatever its grant's state.
    pub fn is_unspent(&self) -> bool {
        self.token.token_active
    }

    /// See [`liveness::holder_is_live`].
    pub fn holder_is_live(&self) -> bool {
        liveness::holder_is_live(&self.holder)
    }

    /// RFC 7662 §4 and RFC 9068: the token's own client, or, for access
    /// tokens, a client its audience names, by client id or by one of the
    /// RFC 8707 resource URIs the client answers for. Refresh tokens are
    /// the client's alone.
    pub fn may_be_seen_by(&self, client_id: &str, resources: &[ResourceUri]) -> bool {
        self.client_id == client_id
            || (self.kind == TokenKind::Access
                && self
                    .audience
                    .iter()
                    .any(|aud| aud == client_id || resources.iter().any(|r| r.as_str() == aud)))
    }
}

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
///
/// The store's memory holds lookups under the hash of the whole presented
/// token, so a JWT found there is the very string that was verified when
/// it was first looked up: its signature is not checked again (ADR 0010).
/// A signing key's events empty the memory.
pub async fn find(
    store: &Store,
    keys: &KeySet,
    presented: &str,
) -> Result<Option<TokenRecord>, sqlx::Error> {
    find_checked(store, keys, presented, None).await
}

/// [`find`] under a freshness verdict taken earlier in the same request
/// (at client authentication), instead of checking again: a commit after
/// that check is concurrent with the request, which may be answered as of
/// the check. `None` checks now.
pub async fn find_checked(
    store: &Store,
    keys: &KeySet,
    presented: &str,
    checked: Option<Fresh>,
) -> Result<Option<TokenRecord>, sqlx::Error> {
    if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    let whole = sha256_hex(presented.as_bytes());
    let memory = store.memory();
    let fresh = checked.or_else(|| memory.and_then(Memory::check));
    if let (Some(memory), Some(fresh)) = (memory, fresh) {
        if let Some(lookup) = memory.token(fresh, &whole) {
            return standing_with_ancestors(store, TokenRecord::from_lookup(lookup)).await;
        }
    }
    let key = if jwt::looks_like_jwt(presented) {
        match key_of(keys, presented).await {
            Some(key) => key,
            None => return Ok(None),
        }
    } else {
        whole.clone()
    };
    let Some(lookup) = view::lookup(store.db(), &key).await? else {
        return Ok(None);
    };
    if let (Some(memory), Some(fresh)) = (memory, fresh) {
        memory.keep_token(fresh, &whole, &lookup);
    }
    standing_with_ancestors(store, TokenRecord::from_lookup(lookup)).await
}

/// RFC 8693: whether every grant in `ancestors` still stands: not revoked,
/// and its client, person and consent as live as a token lookup of its
/// own would require. A grant not found does not stand.
pub async fn ancestors_stand(store: &Store, ancestors: &[String]) -> Result<bool, sqlx::Error> {
    if ancestors.is_empty() {
        return Ok(true);
    }
    let rows = grants::ancestors(store.db(), ancestors).await?;
    Ok(rows.len() == ancestors.len()
        && rows
            .iter()
            .all(|row| row.status != GrantStatus::Revoked && ancestor_holder(row)))
}

/// An ancestor's holder as [`liveness::holder_is_live`] sees it, from
/// the same facts a token lookup of its own would read.
fn ancestor_holder(row: &grants::AncestorRow) -> bool {
    let holder = HolderFacts {
        client_status: row.client_status,
        grant_created_at: &row.created_at,
        sub: row.sub.as_deref(),
        account_status: row.account_status.clone().map(AccountStatus::from),
        credentials_changed_at: row.credentials_changed_at.as_deref(),
        consent_withdrawn_at: row.consent_withdrawn_at.as_deref(),
    }
    .holder();
    liveness::holder_is_live(&holder)
}

/// RFC 8693: a token of an exchanged grant stands only while every
/// grant it descends from does. Asked of the database each time, outside
/// the memory, whose entries a revocation of another grant would not
/// reach; tokens of other grants have no ancestors and cost nothing.
async fn standing_with_ancestors(
    store: &Store,
    mut record: TokenRecord,
) -> Result<Option<TokenRecord>, sqlx::Error> {
    if !ancestors_stand(store, &record.ancestors).await? {
        record.token.grant_active = false;
        record.grant_revoked = true;
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: TokenKind, audience: &[&str]) -> TokenRecord {
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
            jkt: None,
            act: None,
            ancestors: Vec::new(),
            grant_revoked: false,
            cursor: String::new(),
            token: Token {
                is_code: false,
                token_active: true,
                grant_active: true,
                expires_at: DateTime::<Utc>::MAX_UTC,
            },
            holder: Holder {
                client_enabled: true,
                grant_created_at: DateTime::<Utc>::MIN_UTC,
                person: Person::None,
            },
        }
    }

    #[test]
    fn a_resource_server_sees_access_tokens_for_its_resources_only() {
        let api = [ResourceUri::parse("https://api.example/").unwrap_or_else(|e| panic!("{e}"))];
        let for_api = record(TokenKind::Access, &["https://api.example/"]);
        assert!(for_api.may_be_seen_by("app", &[]), "its own client");
        assert!(for_api.may_be_seen_by("rs", &api), "a listed resource");
        assert!(!for_api.may_be_seen_by("rs", &[]), "no resources");
        let other =
            [ResourceUri::parse("https://api.example/v2").unwrap_or_else(|e| panic!("{e}"))];
        assert!(!for_api.may_be_seen_by("rs", &other), "exact match only");
        assert!(
            record(TokenKind::Access, &["rs"]).may_be_seen_by("rs", &[]),
            "by client id"
        );
        let refresh = record(TokenKind::Refresh, &["https://api.example/"]);
        assert!(
            !refresh.may_be_seen_by("rs", &api),
            "refresh tokens stay the client's"
        );
    }

    fn lookup(changed: &str, withdrawn: Option<&str>, kind: &str) -> TokenLookup {
        TokenLookup {
            token_key: "k".into(),
            kind: TokenKind::from(kind.to_owned()),
            gid: "g".into(),
            jti: None,
            scopes: "openid".into(),
            issued_at: "2026-12-05T10:00:00.000000Z".into(),
            expires_at: "2026-12-05T11:00:00.000000Z".into(),
            token_status: TokenStatus::Active,
            client_id: "app".into(),
            sub: Some("s1".into()),
            audience: "[]".into(),
            jkt: None,
            ancestors: None,
            act: None,
            cursor: String::new(),
            grant_status: GrantStatus::Active,
            grant_created_at: "2026-12-05T10:00:00.000000Z".into(),
            client_status: ClientStatus::Active,
            account_status: Some("active".into()),
            credentials_changed_at: Some(changed.into()),
            consent_withdrawn_at: withdrawn.map(str::to_owned),
        }
    }

    #[test]
    fn what_the_lookup_cannot_read_leaves_the_token_inactive() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T10:30:00Z")
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"));
        let before = "2026-12-05T09:00:00.000000Z";
        let live = TokenRecord::from_lookup(lookup(before, None, "access"));
        assert!(live.is_active(now), "the control");
        for (what, row) in [
            ("garbled password change", lookup("garbage", None, "access")),
            (
                "garbled withdrawal",
                lookup(before, Some("garbage"), "access"),
            ),
            ("unknown kind", lookup(before, None, "bearer-ish")),
        ] {
            assert!(!TokenRecord::from_lookup(row).is_active(now), "{what}");
        }
        let mut unknown_account = lookup(before, None, "access");
        unknown_account.account_status = Some("paused".into());
        assert!(!TokenRecord::from_lookup(unknown_account).is_active(now));
    }
}
