//! Grants: who holds what, with which client, since when, and whether it
//! still stands.

use writ_domain::grant::GrantParties;

use super::status;
use super::table;
use crate::statement::Statement;
use crate::{Db, Dialect};

table! {
    GRANTS = "grants", columns grant {
        gid, kind, client_id, sub, scopes, audience, status, created_at,
        updated_at, expires_at, cursor, sid, parent_gid, ancestors, act,
    }
    key [gid]
    lookups [parent_gid]
}

status!(GrantStatus {
    /// A code was issued and not yet redeemed.
    Pending = "pending",
    Active = "active",
    Revoked = "revoked",
});

impl GrantStatus {
    /// A grant in these may still have, or still yield, tokens.
    pub const STANDING: [Self; 2] = [Self::Active, Self::Pending];
}

/// Who a grant belongs to and who its access tokens are for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartiesRow {
    pub client_id: String,
    pub sub: Option<String>,
    /// A JSON array of audiences.
    pub audience: String,
}

impl PartiesRow {
    /// A row whose audience does not parse names no one, so it widens
    /// nothing.
    pub fn audience(&self) -> Vec<String> {
        serde_json::from_str(&self.audience).unwrap_or_default()
    }

    pub fn into_parties(self) -> GrantParties {
        GrantParties {
            audience: self.audience(),
            client_id: self.client_id,
            sub: self.sub,
        }
    }
}

/// Grants held by a client, by a subject, or by a subject with a client,
/// or exchanged from one grant (RFC 8693); optionally only those begun
/// before a time. A filter naming none of these selects nothing.
#[derive(Debug, Clone, Default)]
pub struct Holders {
    pub client_id: Option<String>,
    pub sub: Option<String>,
    /// The grant they were exchanged from.
    pub parent_gid: Option<String>,
    /// A read-table timestamp.
    pub created_before: Option<String>,
}

impl Holders {
    fn statement(&self, select: &str, standing_only: bool) -> Option<Statement> {
        if self.client_id.is_none() && self.sub.is_none() && self.parent_gid.is_none() {
            return None;
        }
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        let mut condition = |sql: &str, value: &str| {
            binds.push(value.to_owned());
            conditions.push(format!("{sql} ${}", binds.len()));
        };
        if let Some(client_id) = &self.client_id {
            condition("client_id =", client_id);
        }
        if let Some(sub) = &self.sub {
            condition("sub =", sub);
        }
        if let Some(parent) = &self.parent_gid {
            condition("parent_gid =", parent);
        }
        if let Some(before) = &self.created_before {
            condition("created_at <", before);
        }
        if standing_only {
            for status in GrantStatus::STANDING {
                binds.push(status.as_str().to_owned());
            }
            let n = binds.len();
            conditions.push(format!("status IN (${}, ${n})", n - 1));
        }
        let sql = format!("{select} FROM grants WHERE {}", conditions.join(" AND "));
        Some(binds.into_iter().fold(Statement::new(sql), Statement::text))
    }
}

async fn gids_of(db: &Db, statement: Option<Statement>) -> Result<Vec<String>, sqlx::Error> {
    let Some(statement) = statement else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String,)> = db.fetch_rows(&statement).await?;
    Ok(rows.into_iter().map(|(gid,)| gid).collect())
}

/// The grants of `holders`, standing or not.
pub async fn held_by(db: &Db, holders: &Holders) -> Result<Vec<String>, sqlx::Error> {
    gids_of(db, holders.statement("SELECT gid", false)).await
}

/// The grants of `holders` that still stand: what a policy revokes.
pub async fn standing(db: &Db, holders: &Holders) -> Result<Vec<String>, sqlx::Error> {
    gids_of(db, holders.statement("SELECT gid", true)).await
}

/// The standing grants made in one browser session: what its logout ends.
pub async fn standing_in_session(db: &Db, sid: &str) -> Result<Vec<String>, sqlx::Error> {
    let [first, second] = GrantStatus::STANDING;
    gids_of(
        db,
        Some(
            Statement::new("SELECT gid FROM grants WHERE sid = $1 AND status IN ($2, $3)")
                .text(sid)
                .text(first.as_str())
                .text(second.as_str()),
        ),
    )
    .await
}

/// The clients given an id_token in one browser session (its grants that
/// asked for `openid`, revoked or not): whom its end is told to
/// (Back-Channel Logout 1.0 §2.7).
pub async fn signed_in_clients(db: &Db, sid: &str) -> Result<Vec<String>, sqlx::Error> {
    let has_openid = match db.dialect() {
        Dialect::Postgres => "position(' openid ' in ' ' || scopes || ' ') > 0",
        Dialect::Sqlite => "instr(' ' || scopes || ' ', ' openid ') > 0",
    };
    let rows: Vec<(String,)> = db
        .fetch_rows(
            &Statement::new(format!(
                "SELECT DISTINCT client_id FROM grants WHERE sid = $1 AND {has_openid} ORDER BY client_id"
            ))
            .text(sid),
        )
        .await?;
    Ok(rows.into_iter().map(|(client_id,)| client_id).collect())
}

/// The distinct owners and audiences among the grants of `holders`.
pub async fn parties_of(db: &Db, holders: &Holders) -> Result<Vec<PartiesRow>, sqlx::Error> {
    match holders.statement("SELECT DISTINCT client_id, NULL AS sub, audience", false) {
        Some(statement) => db.fetch_rows(&statement).await,
        None => Ok(Vec::new()),
    }
}

pub async fn parties(db: &Db, gid: &str) -> Result<Option<PartiesRow>, sqlx::Error> {
    db.fetch_row(
        &Statement::new("SELECT client_id, sub, audience FROM grants WHERE gid = $1").text(gid),
    )
    .await
}

/// Grants whose scopes include `scope`, of one client if given, standing
/// or not: the audit decides what stood when.
pub async fn with_scope(
    db: &Db,
    scope: &str,
    client_id: Option<&str>,
) -> Result<Vec<String>, sqlx::Error> {
    let contains = match db.dialect() {
        Dialect::Postgres => "position($1 in ' ' || scopes || ' ') > 0",
        Dialect::Sqlite => "instr(' ' || scopes || ' ', $1) > 0",
    };
    let by_client = if client_id.is_some() {
        " AND client_id = $2"
    } else {
        ""
    };
    let statement = Statement::new(format!(
        "SELECT gid FROM grants WHERE {contains}{by_client}"
    ))
    .text(format!(" {scope} "));
    gids_of(
        db,
        Some(match client_id {
            Some(client_id) => statement.text(client_id),
            None => statement,
        }),
    )
    .await
}

/// What decides whether an ancestor of an exchanged grant still stands:
/// the same facts the token lookup reads for the grant itself.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AncestorRow {
    #[sqlx(try_from = "String")]
    pub status: GrantStatus,
    pub created_at: String,
    #[sqlx(try_from = "String")]
    pub client_status: super::clients::ClientStatus,
    pub sub: Option<String>,
    pub account_status: Option<String>,
    pub credentials_changed_at: Option<String>,
    pub consent_withdrawn_at: Option<String>,
}

/// The rows of these grants with their client, account and consent, one
/// per grant found (RFC 8693: an exchanged grant stands only while every
/// ancestor does, which the caller decides at once, before the policy has
/// recorded the descendants' own revocations).
pub async fn ancestors(db: &Db, gids: &[String]) -> Result<Vec<AncestorRow>, sqlx::Error> {
    if gids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=gids.len()).map(|n| format!("${n}")).collect();
    let statement = Statement::new(format!(
        "SELECT g.status, g.created_at, c.status AS client_status, g.sub, a.status AS account_status, \
         a.credentials_changed_at, cs.withdrawn_at AS consent_withdrawn_at \
         FROM grants g JOIN clients c ON c.client_id = g.client_id \
         LEFT JOIN accounts a ON a.sub = g.sub \
         LEFT JOIN consents cs ON cs.sub = g.sub AND cs.client_id = g.client_id \
         WHERE g.gid IN ({})",
        placeholders.join(", ")
    ));
    let statement = gids.iter().fold(statement, |s, gid| s.text(gid.clone()));
    db.fetch_rows(&statement).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsable_audience_names_no_one() {
        let parties = |audience: &str| PartiesRow {
            client_id: "app".into(),
            sub: None,
            audience: audience.into(),
        };
        assert!(parties("not json").audience().is_empty());
        assert_eq!(parties("[\"a\",\"b\"]").audience(), vec!["a", "b"]);
    }

    #[test]
    fn holders_bind_every_value_and_select_nothing_without_a_holder() {
        assert!(Holders::default().statement("SELECT gid", true).is_none());
        let statement = Holders {
            client_id: Some("app".into()),
            sub: Some("s1".into()),
            created_before: Some("2026-12-05T10:00:00.000000Z".into()),
            ..Holders::default()
        }
        .statement("SELECT gid", true)
        .unwrap_or_else(|| panic!("a holder is named"));
        assert_eq!(
            statement.sql,
            "SELECT gid FROM grants WHERE client_id = $1 AND sub = $2 AND created_at < $3 AND status IN ($4, $5)"
        );
        assert_eq!(statement.binds.len(), 5);
    }
}
