//! The device authorization grant (RFC 8628): a device starts the grant
//! and polls; a person approves or denies it on another device. Polling
//! while the person has not answered is refused without an event, so the
//! log holds one start, one answer and at most one redemption.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::aggregate::{seconds, Authentication, Grant, GrantStatus};
use super::{GrantCommand, GrantError, GrantEvent, GrantKind, TokenRequest};
use crate::values::SecretHash;
use crate::Services;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceState {
    pub hash: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub interval_secs: u64,
    pub token_ttl_secs: u64,
    pub answer: Option<DeviceAnswer>,
    pub spent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceAnswer {
    Allowed,
    Denied,
}

impl Grant {
    pub(super) fn start_device(&self, command: GrantCommand, now: DateTime<Utc>) -> Decided {
        let GrantCommand::StartDeviceAuthorization {
            gid,
            client_id,
            scopes,
            audience,
            device_code_hash,
            request_id,
            ttl_secs,
            interval_secs,
            token_ttl_secs,
        } = command
        else {
            return Err(GrantError::NotFound);
        };
        if self.status != GrantStatus::Absent {
            return Err(GrantError::AlreadyExists);
        }
        seconds(interval_secs)?;
        seconds(token_ttl_secs)?;
        Ok(vec![GrantEvent::DeviceAuthorizationStarted {
            gid,
            client_id,
            scopes,
            audience,
            device_code_hash,
            request_id,
            issued_at: now,
            expires_at: now + seconds(ttl_secs)?,
            interval_secs,
            token_ttl_secs,
        }])
    }

    pub(super) fn decide_device(
        &self,
        sub: String,
        auth_time: DateTime<Utc>,
        sid: Option<String>,
        allow: bool,
        now: DateTime<Utc>,
    ) -> Decided {
        let device = self.device.as_ref().ok_or(GrantError::NotFound)?;
        if device.answer.is_some() {
            return Err(GrantError::AlreadyDecided);
        }
        if now >= device.expires_at {
            return Err(GrantError::DeviceCodeExpired);
        }
        Ok(vec![if allow {
            GrantEvent::DeviceAuthorizationApproved {
                sub,
                auth_time,
                sid,
                approved_at: now,
            }
        } else {
            GrantEvent::DeviceAuthorizationDenied {
                sub,
                denied_at: now,
            }
        }])
    }

    pub(super) fn redeem_device(
        &self,
        client_id: &str,
        presented: &SecretHash,
        tokens: TokenRequest,
        services: &Services,
    ) -> Decided {
        let device = self.presented_device(client_id, presented)?;
        if device.spent {
            return Err(GrantError::UnknownCode);
        }
        if services.now() >= device.expires_at {
            return Err(GrantError::DeviceCodeExpired);
        }
        match device.answer {
            None => Err(GrantError::AuthorizationPending),
            Some(DeviceAnswer::Denied) => Err(GrantError::DeviceAccessDenied),
            Some(DeviceAnswer::Allowed) => {
                let mut events = vec![GrantEvent::DeviceCodeRedeemed {
                    redeemed_at: services.now(),
                }];
                events.extend(self.mint(&self.scopes, tokens, true, services)?);
                Ok(events)
            }
        }
    }

    /// A denied authorization is a revoked grant; polling it still says
    /// why (§3.5 `access_denied`), to its own client holding its code.
    pub(super) fn refused_when_revoked(&self, command: &GrantCommand) -> GrantError {
        match command {
            GrantCommand::RedeemDeviceCode {
                client_id,
                device_code_hash,
                ..
            } => match self.presented_device(client_id, device_code_hash) {
                Ok(device) if device.answer == Some(DeviceAnswer::Denied) && !device.spent => {
                    GrantError::DeviceAccessDenied
                }
                Ok(_) => GrantError::Revoked,
                Err(refused) => refused,
            },
            _ => GrantError::Revoked,
        }
    }

    fn presented_device(
        &self,
        client_id: &str,
        presented: &SecretHash,
    ) -> Result<&DeviceState, GrantError> {
        let device = self
            .device
            .as_ref()
            .filter(|device| device.hash == *presented)
            .ok_or(GrantError::UnknownCode)?;
        if self.client_id != client_id {
            return Err(GrantError::ClientMismatch);
        }
        Ok(device)
    }

    pub(super) fn apply_device(&mut self, event: GrantEvent) {
        match event {
            GrantEvent::DeviceAuthorizationStarted {
                gid,
                client_id,
                scopes,
                audience,
                device_code_hash,
                expires_at,
                interval_secs,
                token_ttl_secs,
                ..
            } => {
                self.gid = gid;
                self.status = GrantStatus::CodePending;
                self.kind = Some(GrantKind::DeviceCode);
                self.client_id = client_id;
                self.scopes = scopes;
                self.audience = audience;
                self.device = Some(DeviceState {
                    hash: device_code_hash,
                    expires_at,
                    interval_secs,
                    token_ttl_secs,
                    answer: None,
                    spent: false,
                });
            }
            GrantEvent::DeviceAuthorizationApproved {
                sub,
                auth_time,
                sid,
                ..
            } => {
                self.sub = Some(sub);
                self.authentication = Some(Authentication {
                    nonce: None,
                    auth_time: Some(auth_time),
                    sid,
                });
                self.answer(DeviceAnswer::Allowed);
            }
            GrantEvent::DeviceAuthorizationDenied { sub, .. } => {
                self.sub = Some(sub);
                self.status = GrantStatus::Revoked;
                self.answer(DeviceAnswer::Denied);
            }
            GrantEvent::DeviceCodeRedeemed { .. } => {
                if self.status == GrantStatus::CodePending {
                    self.status = GrantStatus::Active;
                }
                if let Some(device) = &mut self.device {
                    device.spent = true;
                }
            }
            _ => {}
        }
    }

    fn answer(&mut self, answer: DeviceAnswer) {
        if let Some(device) = &mut self.device {
            device.answer = Some(answer);
        }
    }
}

type Decided = Result<Vec<GrantEvent>, GrantError>;
