use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{GrantCommand, GrantError, GrantEvent, GrantKind, TokenRequest};
use crate::values::{CodeChallenge, RedirectUri, ScopeSet, SecretHash};
use crate::Services;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantStatus {
    #[default]
    Absent,
    /// A code was issued and not yet redeemed.
    CodePending,
    Active,
    Revoked,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeState {
    pub hash: SecretHash,
    pub challenge: Option<CodeChallenge>,
    pub redirect_uri: RedirectUri,
    pub expires_at: DateTime<Utc>,
    pub spent: bool,
    #[serde(default)]
    pub redirect_uri_defaulted: bool,
    /// How long after `expires_at` a token minted from this code could
    /// still live; `None` in events written before it was recorded.
    #[serde(default)]
    pub token_ttl_secs: Option<u64>,
    #[serde(default)]
    pub dpop_jkt: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedAccess {
    pub jti: String,
    pub token_hash: Option<SecretHash>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshFamily {
    pub current: SecretHash,
    pub rotated: Vec<SecretHash>,
    pub idle_expires_at: DateTime<Utc>,
    pub family_expires_at: DateTime<Utc>,
    /// RFC 9449 §5: the key every refresh must prove, for a public client.
    #[serde(default)]
    pub jkt: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Grant {
    pub gid: String,
    pub status: GrantStatus,
    pub kind: Option<GrantKind>,
    pub client_id: String,
    pub sub: Option<String>,
    pub scopes: ScopeSet,
    pub audience: Vec<String>,
    pub code: Option<CodeState>,
    pub access_tokens: Vec<IssuedAccess>,
    pub refresh: Option<RefreshFamily>,
    /// The sign-in behind a code or device grant, for its id_token.
    pub authentication: Option<Authentication>,
    /// RFC 8628: the device code and the person's answer.
    #[serde(default)]
    pub device: Option<super::device::DeviceState>,
    /// RFC 8693: the grant this one was exchanged from, and its actors.
    #[serde(default)]
    pub lineage: Option<super::Lineage>,
}

/// What the id_token of a code grant says about the sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authentication {
    pub nonce: Option<String>,
    pub auth_time: Option<DateTime<Utc>>,
    pub sid: Option<String>,
}

impl Aggregate for Grant {
    const TYPE: &'static str = "Grant";
    type Command = GrantCommand;
    type Event = GrantEvent;
    type Error = GrantError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            GrantEvent::CodeIssued {
                gid,
                client_id,
                sub,
                scopes,
                audience,
                redirect_uri,
                code_hash,
                challenge,
                expires_at,
                nonce,
                auth_time,
                sid,
                redirect_uri_defaulted,
                token_ttl_secs,
                dpop_jkt,
                ..
            } => {
                self.gid = gid;
                self.status = GrantStatus::CodePending;
                self.authentication = Some(Authentication {
                    nonce,
                    auth_time,
                    sid,
                });
                self.kind = Some(GrantKind::AuthorizationCode);
                self.client_id = client_id;
                self.sub = Some(sub);
                self.scopes = scopes;
                self.audience = audience;
                self.code = Some(CodeState {
                    hash: code_hash,
                    challenge,
                    redirect_uri,
                    expires_at,
                    spent: false,
                    redirect_uri_defaulted,
                    token_ttl_secs,
                    dpop_jkt,
                });
            }
            GrantEvent::CodeRedeemed { .. } => {
                // R72: a revoked grant is terminal. Logs written before
                // `decide` refused this hold a redemption after the
                // revocation; it must not revive the grant when replayed.
                if self.status == GrantStatus::CodePending {
                    self.status = GrantStatus::Active;
                }
                self.spend_code();
            }
            GrantEvent::CodeBurned { .. } => {
                self.status = GrantStatus::Revoked;
                self.spend_code();
            }
            GrantEvent::CodeReplayDetected { .. }
            | GrantEvent::RefreshTokenReuseDetected { .. } => {}
            GrantEvent::GrantStarted {
                gid,
                kind,
                client_id,
                sub,
                scopes,
                audience,
                ..
            } => {
                self.gid = gid;
                self.status = GrantStatus::Active;
                self.kind = Some(kind);
                self.client_id = client_id;
                self.sub = sub;
                self.scopes = scopes;
                self.audience = audience;
            }
            GrantEvent::AccessTokenIssued {
                jti,
                token_hash,
                expires_at,
                ..
            } => self.access_tokens.push(IssuedAccess {
                jti,
                token_hash,
                expires_at,
                // Only old logs mint after a revocation (see CodeRedeemed).
                revoked: self.status == GrantStatus::Revoked,
            }),
            GrantEvent::RefreshTokenIssued {
                token_hash,
                idle_expires_at,
                family_expires_at,
                jkt,
                ..
            } => {
                self.refresh = Some(RefreshFamily {
                    current: token_hash,
                    rotated: Vec::new(),
                    idle_expires_at,
                    family_expires_at,
                    jkt,
                })
            }
            GrantEvent::RefreshTokenRotated {
                previous_hash,
                token_hash,
                idle_expires_at,
                jkt,
                ..
            } => {
                if let Some(family) = &mut self.refresh {
                    family.rotated.push(previous_hash);
                    family.current = token_hash;
                    family.idle_expires_at = idle_expires_at;
                    if jkt.is_some() {
                        family.jkt = jkt;
                    }
                }
            }
            event @ GrantEvent::GrantExchanged { .. } => self.apply_exchange(event),
            event @ (GrantEvent::DeviceAuthorizationStarted { .. }
            | GrantEvent::DeviceAuthorizationApproved { .. }
            | GrantEvent::DeviceAuthorizationDenied { .. }
            | GrantEvent::DeviceCodeRedeemed { .. }) => self.apply_device(event),
            GrantEvent::AccessTokenRevoked { jti, .. } => {
                if let Some(token) = self.access_tokens.iter_mut().find(|t| t.jti == jti) {
                    token.revoked = true;
                }
            }
            GrantEvent::GrantRevoked { .. } => {
                self.status = GrantStatus::Revoked;
                self.access_tokens.iter_mut().for_each(|t| t.revoked = true);
            }
        }
    }
}

impl Grant {
    fn decide(
        &self,
        command: GrantCommand,
        services: &Services,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        let now = services.now();
        // R72: a revoked grant is terminal. Every command on it is refused
        // and records nothing: a pending code, a refresh token or a second
        // revocation cannot bring it back or move it.
        if self.status == GrantStatus::Revoked {
            return Err(self.refused_when_revoked(&command));
        }
        match command {
            GrantCommand::IssueCode {
                gid,
                client_id,
                sub,
                scopes,
                audience,
                redirect_uri,
                code_hash,
                challenge,
                nonce,
                request_id,
                code_ttl_secs,
                auth_time,
                sid,
                redirect_uri_defaulted,
                token_ttl_secs,
                dpop_jkt,
            } => {
                self.ensure_absent()?;
                Ok(vec![GrantEvent::CodeIssued {
                    gid,
                    client_id,
                    sub,
                    scopes,
                    audience,
                    redirect_uri,
                    code_hash,
                    challenge,
                    nonce,
                    request_id,
                    issued_at: now,
                    expires_at: now + seconds(code_ttl_secs)?,
                    auth_time,
                    sid,
                    redirect_uri_defaulted,
                    token_ttl_secs: Some(token_ttl_secs),
                    dpop_jkt,
                }])
            }
            GrantCommand::RedeemCode {
                client_id,
                code_hash,
                redirect_uri,
                verifier,
                tokens,
            } => self.redeem_code(
                &client_id,
                &code_hash,
                redirect_uri.as_ref(),
                verifier.as_deref(),
                tokens,
                services,
            ),
            GrantCommand::GrantClientCredentials {
                gid,
                client_id,
                scopes,
                audience,
                tokens,
            } => self.start(
                gid,
                GrantKind::ClientCredentials,
                client_id,
                None,
                scopes,
                audience,
                tokens,
                services,
            ),
            GrantCommand::GrantByPassword {
                gid,
                client_id,
                sub,
                scopes,
                audience,
                tokens,
            } => self.start(
                gid,
                GrantKind::Password,
                client_id,
                Some(sub),
                scopes,
                audience,
                tokens,
                services,
            ),
            GrantCommand::Refresh {
                client_id,
                token_hash,
                scopes,
                tokens,
            } => self.refresh(&client_id, &token_hash, scopes, tokens, services),
            GrantCommand::Exchange {
                gid,
                client_id,
                sub,
                scopes,
                audience,
                lineage,
                tokens,
            } => self.exchange(
                gid, client_id, sub, scopes, audience, lineage, tokens, services,
            ),
            start @ GrantCommand::StartDeviceAuthorization { .. } => self.start_device(start, now),
            GrantCommand::DecideDevice {
                sub,
                auth_time,
                sid,
                allow,
            } => self.decide_device(sub, auth_time, sid, allow, now),
            GrantCommand::RedeemDeviceCode {
                client_id,
                device_code_hash,
                tokens,
            } => self.redeem_device(&client_id, &device_code_hash, tokens, services),
            GrantCommand::RevokeToken {
                client_id,
                token,
                by,
            } => self.revoke_token(&client_id, &token, by, now),
            GrantCommand::Revoke { by, reason } => match self.status {
                GrantStatus::Absent => Err(GrantError::NotFound),
                _ => Ok(vec![self.revocation(by, reason, now)]),
            },
        }
    }

    fn redeem_code(
        &self,
        client_id: &str,
        code_hash: &SecretHash,
        redirect_uri: Option<&RedirectUri>,
        verifier: Option<&str>,
        tokens: TokenRequest,
        services: &Services,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        let now = services.now();
        let code = self
            .code
            .as_ref()
            .filter(|code| code.hash == *code_hash)
            .ok_or(GrantError::UnknownCode)?;
        if self.client_id != client_id {
            return Err(GrantError::ClientMismatch);
        }
        if code.spent {
            // RFC 6749 §4.1.2: a second use revokes what the first one issued.
            return Ok(vec![
                GrantEvent::CodeReplayDetected { detected_at: now },
                self.revocation("writ".into(), "code_replay".into(), now),
            ]);
        }
        if now >= code.expires_at {
            return Err(GrantError::CodeExpired);
        }
        let redirect_ok = match redirect_uri {
            Some(given) => *given == code.redirect_uri,
            None => code.redirect_uri_defaulted,
        };
        if !redirect_ok {
            return Err(GrantError::RedirectUriMismatch);
        }
        // RFC 9449 §10: a bound code is refused, unspent, to a request
        // that cannot prove its key, so the rightful client can still use it.
        if code.dpop_jkt.is_some() && code.dpop_jkt != tokens.dpop_jkt {
            return Err(GrantError::DpopKeyMismatch);
        }
        let pkce_failure = match (&code.challenge, verifier) {
            (Some(challenge), Some(verifier)) if challenge.is_satisfied_by(verifier) => None,
            (Some(_), Some(_)) => Some("pkce_verifier_mismatch"),
            (Some(_), None) => Some("pkce_verifier_missing"),
            // RFC 9700 §2.1.1: a verifier for a code issued without a
            // challenge is a downgrade attempt.
            (None, Some(_)) => Some("pkce_downgrade"),
            (None, None) => None,
        };
        if let Some(reason) = pkce_failure {
            return Ok(vec![GrantEvent::CodeBurned {
                reason: reason.into(),
                burned_at: now,
            }]);
        }
        let mut events = vec![GrantEvent::CodeRedeemed { redeemed_at: now }];
        events.extend(self.mint(&self.scopes, tokens, true, services)?);
        Ok(events)
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        gid: String,
        kind: GrantKind,
        client_id: String,
        sub: Option<String>,
        scopes: ScopeSet,
        audience: Vec<String>,
        tokens: TokenRequest,
        services: &Services,
    ) -> Result<Vec<GrantEvent>, GrantError> {
        self.ensure_absent()?;
        let mut events = vec![GrantEvent::GrantStarted {
            gid,
            kind,
            client_id,
            sub,
            scopes: scopes.clone(),
            audience,
            started_at: services.now(),
        }];
        events.extend(self.mint(&scopes, tokens, true, services)?);
        Ok(events)
    }

    fn ensure_absent(&self) -> Result<(), GrantError> {
        match self.status {
            GrantStatus::Absent => Ok(()),
            _ => Err(GrantError::AlreadyExists),
        }
    }

    fn spend_code(&mut self) {
        if let Some(code) = &mut self.code {
            code.spent = true;
        }
    }
}

pub(super) fn seconds(secs: u64) -> Result<Duration, GrantError> {
    match i64::try_from(secs) {
        Ok(0) | Err(_) => Err(GrantError::ZeroLifetime),
        Ok(secs) => Duration::try_seconds(secs).ok_or(GrantError::ZeroLifetime),
    }
}
