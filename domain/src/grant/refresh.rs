//! A refresh (RFC 6749 §6): rotation, reuse detection (which revokes the
//! family, RFC 9700 §4.14.2), narrowing, and the DPoP key a public
//! client's family is bound to.

use super::aggregate::{seconds, Grant};
use super::{GrantError, GrantEvent, TokenRequest};
use crate::values::{ScopeSet, SecretHash};
use crate::Services;

impl Grant {
    pub(super) fn refresh(
        &self,
        client_id: &str,
        presented: &SecretHash,
        scopes: Option<ScopeSet>,
        tokens: TokenRequest,
        services: &Services,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        let now = services.now();
        let family = self.refresh.as_ref().ok_or(GrantError::NotRefreshable)?;
        if self.client_id != client_id {
            return Err(GrantError::ClientMismatch);
        }
        if family.rotated.contains(presented) {
            return Ok(vec![
                GrantEvent::RefreshTokenReuseDetected {
                    token_hash: presented.clone(),
                    detected_at: now,
                },
                self.revocation("writ".into(), "refresh_token_reuse".into(), now),
            ]);
        }
        if family.current != *presented {
            return Err(GrantError::UnknownRefreshToken);
        }
        if now >= family.idle_expires_at || now >= family.family_expires_at {
            return Err(GrantError::RefreshExpired);
        }
        if family.jkt.is_some() && family.jkt != tokens.dpop_jkt {
            return Err(GrantError::DpopKeyMismatch);
        }
        let scopes = match scopes {
            Some(requested) if !requested.is_subset(&self.scopes) => {
                return Err(GrantError::ScopeEscalation)
            }
            Some(requested) => requested,
            None => self.scopes.clone(),
        };
        let mut events = Vec::new();
        if let Some(next) = &tokens.refresh {
            events.push(GrantEvent::RefreshTokenRotated {
                previous_hash: presented.clone(),
                token_hash: next.token_hash.clone(),
                rotated_at: now,
                idle_expires_at: (now + seconds(next.idle_ttl_secs)?).min(family.family_expires_at),
                jkt: family.jkt.clone().or_else(|| next.jkt.clone()),
            });
        }
        events.extend(self.mint(
            &scopes,
            TokenRequest {
                refresh: None,
                ..tokens
            },
            false,
            services,
        )?);
        Ok(events)
    }
}
