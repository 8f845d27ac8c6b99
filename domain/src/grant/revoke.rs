//! Revocation: one token (RFC 7009), or the whole grant, with what
//! resource servers need to remember it for as long as it matters.

use chrono::{DateTime, Duration, Utc};

use super::aggregate::{Grant, IssuedAccess};
use super::{GrantError, GrantEvent, GrantParties, TokenRef};

impl Grant {
    pub(super) fn revoke_token(
        &self,
        client_id: &str,
        token: &TokenRef,
        by: String,
        now: DateTime<Utc>,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        // RFC 7009 §2.1: a client may only revoke its own tokens; the
        // endpoint answers 200 either way, so this refusal records nothing.
        if self.client_id != client_id {
            return Err(GrantError::ClientMismatch);
        }
        let live = |t: &&IssuedAccess| !t.revoked;
        match token {
            TokenRef::AccessJti(jti) => self
                .access_tokens
                .iter()
                .filter(live)
                .find(|t| t.jti == *jti),
            TokenRef::AccessHash(hash) => self
                .access_tokens
                .iter()
                .filter(live)
                .find(|t| t.token_hash.as_ref() == Some(hash)),
            TokenRef::RefreshHash(hash) => {
                // RFC 7009 §2.1: revoking a refresh token revokes the grant's
                // access tokens too.
                return match &self.refresh {
                    Some(family) if family.current == *hash => Ok(vec![self.revocation(
                        by,
                        "refresh_token_revoked".into(),
                        now,
                    )]),
                    _ => Err(GrantError::UnknownToken),
                };
            }
        }
        .map(|t| {
            vec![GrantEvent::AccessTokenRevoked {
                jti: t.jti.clone(),
                by,
                revoked_at: now,
                parties: Some(GrantParties::of(self)),
                expires_at: Some(t.expires_at),
            }]
        })
        .ok_or(GrantError::UnknownToken)
    }

    pub(super) fn revocation(&self, by: String, reason: String, now: DateTime<Utc>) -> GrantEvent {
        let live: Vec<&IssuedAccess> = self.access_tokens.iter().filter(|t| !t.revoked).collect();
        GrantEvent::GrantRevoked {
            by,
            reason,
            jtis: live.iter().map(|t| t.jti.clone()).collect(),
            expires_at: live
                .iter()
                .map(|t| t.expires_at)
                .chain(self.pending_code_bound())
                .max(),
            revoked_at: now,
            parties: Some(GrantParties::of(self)),
        }
    }

    /// R72: the latest a token minted from a still-pending code (or
    /// device code) could live. Nothing can be minted once the grant is
    /// revoked, but resource servers keep the gid denied until then all
    /// the same, so a deny-list never depends on every writer refusing.
    fn pending_code_bound(&self) -> Option<DateTime<Utc>> {
        let code = self
            .code
            .as_ref()
            .filter(|code| !code.spent)
            .map(|code| (code.expires_at, code.token_ttl_secs));
        let device = self
            .device
            .as_ref()
            .filter(|device| !device.spent)
            .map(|device| (device.expires_at, Some(device.token_ttl_secs)));
        let (expires_at, token_ttl_secs) = code.or(device)?;
        let after = token_ttl_secs
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(Duration::try_seconds)
            .unwrap_or_default();
        expires_at.checked_add_signed(after)
    }
}
