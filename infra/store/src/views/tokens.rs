//! Issued tokens and codes, keyed by their hash (or `jti:` for a JWT),
//! and the one lookup that answers introspection and userinfo.

use super::accounts::AccountStatus;
use super::clients::ClientStatus;
use super::grants::GrantStatus;
use super::status;
use super::table;
use crate::statement::Statement;
use crate::Db;

table! {
    TOKENS = "tokens", columns token {
        token_key, kind, gid, jti, scopes, issued_at, expires_at, status,
        audience, jkt, status_list, status_idx,
    }
    key [token_key]
    lookups [gid]
}

status!(TokenStatus {
    Active = "active",
    /// A redeemed authorization code.
    Spent = "spent",
    /// A refresh token replaced by its successor.
    Rotated = "rotated",
    Revoked = "revoked",
});

status!(TokenKind {
    Access = "access",
    Refresh = "refresh",
    Code = "code",
    /// RFC 8628: what the device polls with.
    DeviceCode = "device_code",
});

/// A token with everything that decides whether it is active: its grant,
/// the grant's client, and the account and consent of its subject.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenLookup {
    pub token_key: String,
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    pub gid: String,
    pub jti: Option<String>,
    /// The token's own scopes, else its grant's.
    pub scopes: String,
    pub issued_at: String,
    pub expires_at: String,
    #[sqlx(try_from = "String")]
    pub token_status: TokenStatus,
    pub client_id: String,
    pub sub: Option<String>,
    /// A JSON array: the token's own (RFC 8707, narrowed at a code
    /// exchange or refresh), else its grant's.
    pub audience: String,
    /// RFC 9449: the thumbprint of the DPoP key an access token is bound to.
    pub jkt: Option<String>,
    /// RFC 8693: an exchanged grant's ancestors (a JSON array) and actors.
    pub ancestors: Option<String>,
    pub act: Option<String>,
    pub cursor: String,
    #[sqlx(try_from = "String")]
    pub grant_status: GrantStatus,
    pub grant_created_at: String,
    #[sqlx(try_from = "String")]
    pub client_status: ClientStatus,
    pub account_status: Option<String>,
    pub credentials_changed_at: Option<String>,
    pub consent_withdrawn_at: Option<String>,
}

impl TokenLookup {
    /// `None` without an account row.
    pub fn account_status(&self) -> Option<AccountStatus> {
        self.account_status.clone().map(AccountStatus::from)
    }
}

const LOOKUP: &str = "SELECT t.token_key, t.kind, t.gid, t.jti, coalesce(t.scopes, g.scopes) AS scopes, t.issued_at, t.expires_at, \
  t.status AS token_status, g.client_id, g.sub, coalesce(t.audience, g.audience) AS audience, t.jkt, g.ancestors, g.act, g.cursor, g.status AS grant_status, \
  g.created_at AS grant_created_at, c.status AS client_status, a.status AS account_status, \
  a.credentials_changed_at, cs.withdrawn_at AS consent_withdrawn_at \
  FROM tokens t JOIN grants g ON g.gid = t.gid JOIN clients c ON c.client_id = g.client_id \
  LEFT JOIN accounts a ON a.sub = g.sub \
  LEFT JOIN consents cs ON cs.sub = g.sub AND cs.client_id = g.client_id WHERE t.token_key = $1";

pub async fn lookup(db: &Db, token_key: &str) -> Result<Option<TokenLookup>, sqlx::Error> {
    db.fetch_row(&Statement::new(LOOKUP).text(token_key)).await
}

/// Access tokens a revocation reaches, for the latest time one of them
/// expires: after it, resource servers can forget the revocation.
#[derive(Debug, Clone, Copy)]
pub enum AccessTokensOf<'a> {
    /// One JWT of a grant.
    Jti {
        gid: &'a str,
        jti: &'a str,
    },
    /// Every grant of a subject with a client (a withdrawn consent).
    Consent {
        sub: &'a str,
        client_id: &'a str,
    },
    Client(&'a str),
    Subject(&'a str),
}

/// The latest expiry among the access tokens reached; `None` when none
/// was issued.
pub async fn latest_expiry(db: &Db, of: AccessTokensOf<'_>) -> Result<Option<String>, sqlx::Error> {
    const JOINED: &str = "SELECT max(t.expires_at) FROM tokens t JOIN grants g ON g.gid = t.gid \
         WHERE t.kind = $1";
    let access = TokenKind::Access.as_str();
    let statement = match of {
        AccessTokensOf::Jti { gid, jti } => Statement::new(
            "SELECT max(expires_at) FROM tokens WHERE kind = $1 AND gid = $2 AND jti = $3",
        )
        .text(access)
        .text(gid)
        .text(jti),
        AccessTokensOf::Consent { sub, client_id } => {
            Statement::new(format!("{JOINED} AND g.sub = $2 AND g.client_id = $3"))
                .text(access)
                .text(sub)
                .text(client_id)
        }
        AccessTokensOf::Client(client_id) => {
            Statement::new(format!("{JOINED} AND g.client_id = $2"))
                .text(access)
                .text(client_id)
        }
        AccessTokensOf::Subject(sub) => Statement::new(format!("{JOINED} AND g.sub = $2"))
            .text(access)
            .text(sub),
    };
    let latest: Option<(Option<String>,)> = db.fetch_row(&statement).await?;
    Ok(latest.and_then(|(latest,)| latest))
}
