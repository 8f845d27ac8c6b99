//! What a grant event changes: the grant's row (status, expiry, the cursor
//! an introspection answer reports) and its tokens' rows.

use chrono::{DateTime, Utc};
use writ_domain::grant::{GrantEvent, GrantKind};

use super::{text, timestamp, to};
use crate::change::{Assign, Change};
use crate::views::grants::{grant, GrantStatus};
use crate::views::tokens::{token, TokenKind, TokenStatus};
use crate::views::{GRANTS, TOKENS};

fn kind_name(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::AuthorizationCode => "authorization_code",
        GrantKind::ClientCredentials => "client_credentials",
        GrantKind::Password => "password",
        GrantKind::DeviceCode => "device_code",
        GrantKind::TokenExchange => "token_exchange",
    }
}

/// The grant row's first version, with the token that may come with it.
struct NewGrant<'a> {
    kind: &'a str,
    client_id: String,
    sub: Option<String>,
    scopes: String,
    audience: &'a [String],
    status: &'a str,
    at: &'a str,
    until: &'a str,
    sid: Option<String>,
}

/// Every grant event moves the grant's `cursor`: an introspection answer
/// reports it as `writ_cursor`, the log position the answer reflects.
pub(super) fn grant(gid: &str, cursor: &str, event: GrantEvent) -> Vec<Change> {
    let by_gid = || vec![(grant::gid, gid.to_owned())];
    let set_status = |status: GrantStatus, at: &DateTime<Utc>| {
        Change::update(
            &GRANTS,
            vec![
                (grant::status, to(status.as_str())),
                (grant::updated_at, to(timestamp(at))),
            ],
            by_gid(),
        )
    };
    let tokens_where = |set: TokenStatus, also: (&'static str, String)| {
        Change::update(
            &TOKENS,
            vec![(token::status, to(set.as_str()))],
            vec![(token::gid, gid.to_owned()), also],
        )
    };
    let extend = |until: &str| {
        Change::update(
            &GRANTS,
            vec![
                (grant::expires_at, Assign::AtLeast(until.to_owned())),
                (grant::cursor, to(cursor)),
            ],
            by_gid(),
        )
    };
    // A code or device code redeemed: the grant activates (only from
    // pending, see CodeRedeemed below) and the code is spent.
    let redeemed = |kind: TokenKind, at: &DateTime<Utc>| {
        vec![
            Change::update(
                &GRANTS,
                vec![
                    (grant::status, to(GrantStatus::Active.as_str())),
                    (grant::updated_at, to(timestamp(at))),
                ],
                vec![
                    (grant::gid, gid.to_owned()),
                    (grant::status, GrantStatus::Pending.as_str().to_owned()),
                ],
            ),
            tokens_where(TokenStatus::Spent, (token::kind, kind.as_str().into())),
        ]
    };
    let new_token = |key: String,
                     kind: &str,
                     jti: Option<String>,
                     scopes: Option<String>,
                     at: &str,
                     until: &str| {
        Change::insert(
            &TOKENS,
            vec![
                (token::token_key, text(key)),
                (token::kind, text(kind)),
                (token::gid, text(gid)),
                (token::jti, jti),
                (token::scopes, scopes),
                (token::issued_at, text(at)),
                (token::expires_at, text(until)),
                (token::status, text(TokenStatus::Active.as_str())),
            ],
        )
    };
    let new_grant = |grant: NewGrant<'_>| {
        Change::insert(
            &GRANTS,
            vec![
                (grant::gid, text(gid)),
                (grant::kind, text(grant.kind)),
                (grant::client_id, text(grant.client_id)),
                (grant::sub, grant.sub),
                (grant::scopes, text(grant.scopes)),
                (
                    grant::audience,
                    text(serde_json::to_string(grant.audience).unwrap_or_default()),
                ),
                (grant::status, text(grant.status)),
                (grant::created_at, text(grant.at)),
                (grant::updated_at, text(grant.at)),
                (grant::expires_at, text(grant.until)),
                (grant::cursor, text(cursor)),
                (grant::sid, grant.sid),
            ],
        )
    };
    // Creations and extensions set the cursor themselves.
    let sets_cursor = matches!(
        event,
        GrantEvent::CodeIssued { .. }
            | GrantEvent::DeviceAuthorizationStarted { .. }
            | GrantEvent::GrantStarted { .. }
            | GrantEvent::GrantExchanged { .. }
            | GrantEvent::AccessTokenIssued { .. }
            | GrantEvent::RefreshTokenIssued { .. }
    );
    let mut changes = match event {
        GrantEvent::CodeIssued {
            client_id,
            sub,
            scopes,
            audience,
            code_hash,
            issued_at,
            expires_at,
            sid,
            dpop_jkt,
            ..
        } => {
            let (at, until) = (timestamp(&issued_at), timestamp(&expires_at));
            vec![
                new_grant(NewGrant {
                    kind: "authorization_code",
                    client_id,
                    sub: Some(sub),
                    scopes: scopes.to_string(),
                    audience: &audience,
                    status: GrantStatus::Pending.as_str(),
                    at: &at,
                    until: &until,
                    sid,
                }),
                bound_to(
                    new_token(
                        code_hash.0,
                        TokenKind::Code.as_str(),
                        None,
                        None,
                        &at,
                        &until,
                    ),
                    dpop_jkt,
                ),
            ]
        }
        // R72: only a pending grant becomes active. Logs written before
        // redemptions of revoked grants were refused hold some; replayed,
        // they leave the grant revoked (the aggregate's apply agrees).
        GrantEvent::CodeRedeemed { redeemed_at: at } => redeemed(TokenKind::Code, &at),
        GrantEvent::CodeBurned { burned_at: at, .. } => vec![
            set_status(GrantStatus::Revoked, &at),
            tokens_where(
                TokenStatus::Spent,
                (token::kind, TokenKind::Code.as_str().into()),
            ),
        ],
        // RFC 8693: the lineage on the row lets a token's lookup check its
        // ancestors, and the policy find a revoked grant's children.
        GrantEvent::GrantExchanged {
            client_id,
            sub,
            scopes,
            audience,
            lineage,
            started_at,
            ..
        } => {
            let at = timestamp(&started_at);
            let mut row = new_grant(NewGrant {
                kind: kind_name(GrantKind::TokenExchange),
                client_id,
                sub,
                scopes: scopes.to_string(),
                audience: &audience,
                status: GrantStatus::Active.as_str(),
                at: &at,
                until: &at,
                sid: None,
            });
            if let Change::Insert { values, .. } = &mut row {
                values.extend([
                    (grant::parent_gid, Some(lineage.parent_gid)),
                    (
                        grant::ancestors,
                        serde_json::to_string(&lineage.ancestors).ok(),
                    ),
                    (
                        grant::act,
                        lineage.act.and_then(|act| serde_json::to_string(&act).ok()),
                    ),
                ]);
            }
            vec![row]
        }
        GrantEvent::DeviceAuthorizationStarted {
            client_id,
            scopes,
            audience,
            device_code_hash,
            issued_at,
            expires_at,
            ..
        } => {
            let (at, until) = (timestamp(&issued_at), timestamp(&expires_at));
            vec![
                new_grant(NewGrant {
                    kind: kind_name(GrantKind::DeviceCode),
                    client_id,
                    sub: None,
                    scopes: scopes.to_string(),
                    audience: &audience,
                    status: GrantStatus::Pending.as_str(),
                    at: &at,
                    until: &until,
                    sid: None,
                }),
                new_token(
                    device_code_hash.0,
                    TokenKind::DeviceCode.as_str(),
                    None,
                    None,
                    &at,
                    &until,
                ),
            ]
        }
        // The person who answered is the grant's subject from here on, and
        // their browser session the one whose logout ends it. The grant
        // begins for them now: a password changed or a consent withdrawn
        // while the device waited must not kill what they just allowed.
        GrantEvent::DeviceAuthorizationApproved {
            sub,
            sid,
            approved_at,
            ..
        } => vec![Change::update(
            &GRANTS,
            vec![
                (grant::sub, to(sub)),
                (grant::sid, Assign::To(sid)),
                (grant::created_at, to(timestamp(&approved_at))),
                (grant::updated_at, to(timestamp(&approved_at))),
            ],
            by_gid(),
        )],
        // The device code stays unspent, so the device's next poll reaches
        // the grant and learns it was denied (RFC 8628 §3.5).
        GrantEvent::DeviceAuthorizationDenied { sub, denied_at } => vec![Change::update(
            &GRANTS,
            vec![
                (grant::sub, to(sub)),
                (grant::status, to(GrantStatus::Revoked.as_str())),
                (grant::updated_at, to(timestamp(&denied_at))),
            ],
            by_gid(),
        )],
        GrantEvent::DeviceCodeRedeemed { redeemed_at: at } => redeemed(TokenKind::DeviceCode, &at),
        GrantEvent::CodeReplayDetected { .. } | GrantEvent::RefreshTokenReuseDetected { .. } => {
            Vec::new()
        }
        GrantEvent::GrantStarted {
            kind,
            client_id,
            sub,
            scopes,
            audience,
            started_at,
            ..
        } => {
            let at = timestamp(&started_at);
            vec![new_grant(NewGrant {
                kind: kind_name(kind),
                client_id,
                sub,
                scopes: scopes.to_string(),
                audience: &audience,
                status: GrantStatus::Active.as_str(),
                at: &at,
                until: &at,
                sid: None,
            })]
        }
        GrantEvent::AccessTokenIssued {
            jti,
            token_hash,
            scopes,
            issued_at,
            expires_at,
            audience,
            jkt,
            status,
        } => {
            let until = timestamp(&expires_at);
            // JWTs are found by jti; opaque tokens by their hash.
            let key = token_hash
                .map(|h| h.0)
                .unwrap_or_else(|| format!("jti:{jti}"));
            let mut token = new_token(
                key,
                TokenKind::Access.as_str(),
                Some(jti),
                Some(scopes.to_string()),
                &timestamp(&issued_at),
                &until,
            );
            // A narrowed audience only (RFC 8707); else the grant's.
            if let Change::Insert { values, .. } = &mut token {
                if let Some(audience) = audience {
                    values.push((token::audience, serde_json::to_string(&audience).ok()));
                }
                // Where the projector flips the token's bit when it is revoked.
                if let Some(slot) = status {
                    values.push((token::status_list, Some(slot.list)));
                    values.push((token::status_idx, Some(slot.idx.to_string())));
                }
            }
            vec![bound_to(token, jkt), extend(&until)]
        }
        GrantEvent::RefreshTokenIssued {
            token_hash,
            issued_at,
            idle_expires_at,
            family_expires_at,
            jkt,
        } => vec![
            bound_to(
                new_token(
                    token_hash.0,
                    TokenKind::Refresh.as_str(),
                    None,
                    None,
                    &timestamp(&issued_at),
                    &timestamp(&idle_expires_at),
                ),
                jkt,
            ),
            extend(&timestamp(&family_expires_at)),
        ],
        GrantEvent::RefreshTokenRotated {
            previous_hash,
            token_hash,
            rotated_at,
            idle_expires_at,
            jkt,
        } => vec![
            Change::update(
                &TOKENS,
                vec![(token::status, to(TokenStatus::Rotated.as_str()))],
                vec![(token::token_key, previous_hash.0)],
            ),
            bound_to(
                new_token(
                    token_hash.0,
                    TokenKind::Refresh.as_str(),
                    None,
                    None,
                    &timestamp(&rotated_at),
                    &timestamp(&idle_expires_at),
                ),
                jkt,
            ),
        ],
        GrantEvent::AccessTokenRevoked { jti, .. } => {
            vec![tokens_where(TokenStatus::Revoked, (token::jti, jti))]
        }
        GrantEvent::GrantRevoked { revoked_at, .. } => vec![
            set_status(GrantStatus::Revoked, &revoked_at),
            tokens_where(
                TokenStatus::Revoked,
                (token::status, TokenStatus::Active.as_str().into()),
            ),
        ],
    };
    if !sets_cursor {
        changes.push(Change::update(
            &GRANTS,
            vec![(grant::cursor, to(cursor))],
            by_gid(),
        ));
    }
    changes
}

/// A new token row with the DPoP key (RFC 9449) the token, code or
/// refresh token is bound to, so that a request proving another key is
/// refused before anything is recorded.
fn bound_to(mut token: Change, jkt: Option<String>) -> Change {
    if let (Some(jkt), Change::Insert { values, .. }) = (jkt, &mut token) {
        values.push((token::jkt, Some(jkt)));
    }
    token
}

#[cfg(test)]
mod tests;
