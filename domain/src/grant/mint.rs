//! Minting a grant's tokens: its access token and, the first time, its
//! refresh token. Apart from the aggregate so that file stays readable.

use super::aggregate::{seconds, Grant};
use super::{GrantError, GrantEvent, TokenRequest};
use crate::values::ScopeSet;
use crate::Services;

impl Grant {
    pub(super) fn mint(
        &self,
        scopes: &ScopeSet,
        tokens: TokenRequest,
        first_refresh: bool,
        services: &Services,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        let now = services.now();
        // RFC 8707 §2.2: a token may be for fewer resources than the
        // grant, never for one it does not hold.
        if let Some(narrowed) = &tokens.audience {
            if narrowed
                .iter()
                .any(|resource| !self.audience.contains(resource))
            {
                return Err(GrantError::ResourceNotGranted);
            }
        }
        let mut events = vec![GrantEvent::AccessTokenIssued {
            jti: services.randomness.uuid(),
            token_hash: tokens.opaque_access_hash,
            scopes: scopes.clone(),
            issued_at: now,
            expires_at: now + seconds(tokens.access_ttl_secs)?,
            audience: tokens
                .audience
                .filter(|narrowed| *narrowed != self.audience),
            jkt: tokens.dpop_jkt,
            status: tokens.status,
        }];
        if let (true, Some(refresh)) = (first_refresh, tokens.refresh) {
            let family_expires_at = now + seconds(refresh.family_ttl_secs)?;
            events.push(GrantEvent::RefreshTokenIssued {
                token_hash: refresh.token_hash,
                issued_at: now,
                idle_expires_at: (now + seconds(refresh.idle_ttl_secs)?).min(family_expires_at),
                family_expires_at,
                jkt: refresh.jkt,
            });
        }
        Ok(events)
    }
}
