use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::AccountEvent;
use crate::values::Sealed;
use crate::Services;

#[derive(Debug, Clone)]
pub enum AccountCommand {
    /// `sub` and the seals come from infra, which must create the subject's
    /// data key before it can seal anything under it.
    Create {
        sub: String,
        username: Sealed,
        email: Option<Sealed>,
        name: Option<Sealed>,
        password_hash: Sealed,
    },
    ChangePassword {
        password_hash: Sealed,
    },
    UpdateClaims {
        email: Option<Sealed>,
        name: Option<Sealed>,
    },
    Disable {
        reason: String,
    },
    Enable {
        reason: String,
    },
    Forget,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccountError {
    #[error("an account with this username already exists")]
    AlreadyExists,
    #[error("no such account")]
    NotFound,
    #[error("the account is disabled")]
    Disabled,
    #[error("the account is not disabled")]
    NotDisabled,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    /// Never created, or forgotten: the username is free.
    #[default]
    Absent,
    Active,
    Disabled,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    pub status: AccountStatus,
    pub sub: String,
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let sub = self.sub.clone();
        let event = match command {
            AccountCommand::Create {
                sub,
                username,
                email,
                name,
                password_hash,
            } => {
                if self.status != AccountStatus::Absent {
                    return Err(AccountError::AlreadyExists);
                }
                AccountEvent::AccountCreated {
                    sub,
                    username,
                    email,
                    name,
                    password_hash,
                    created_at: now,
                }
            }
            AccountCommand::ChangePassword { password_hash } => {
                self.ensure_active()?;
                AccountEvent::PasswordChanged {
                    sub,
                    password_hash,
                    changed_at: now,
                }
            }
            AccountCommand::UpdateClaims { email, name } => {
                self.ensure_active()?;
                AccountEvent::ClaimsUpdated {
                    sub,
                    email,
                    name,
                    updated_at: now,
                }
            }
            AccountCommand::Disable { reason } => {
                self.ensure_active()?;
                AccountEvent::AccountDisabled {
                    sub,
                    reason,
                    disabled_at: now,
                }
            }
            AccountCommand::Enable { reason } => match self.status {
                AccountStatus::Absent => return Err(AccountError::NotFound),
                AccountStatus::Active => return Err(AccountError::NotDisabled),
                AccountStatus::Disabled => AccountEvent::AccountEnabled {
                    sub,
                    reason,
                    enabled_at: now,
                },
            },
            AccountCommand::Forget => {
                if self.status == AccountStatus::Absent {
                    return Err(AccountError::NotFound);
                }
                AccountEvent::AccountForgotten {
                    sub,
                    forgotten_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccountEvent::AccountCreated { sub, .. } => {
                self.status = AccountStatus::Active;
                self.sub = sub;
            }
            AccountEvent::PasswordChanged { .. } | AccountEvent::ClaimsUpdated { .. } => {}
            AccountEvent::AccountDisabled { .. } => self.status = AccountStatus::Disabled,
            AccountEvent::AccountEnabled { .. } => self.status = AccountStatus::Active,
            AccountEvent::AccountForgotten { .. } => {
                self.status = AccountStatus::Absent;
                self.sub.clear();
            }
        }
    }
}

impl Account {
    fn ensure_active(&self) -> Result<(), AccountError> {
        match self.status {
            AccountStatus::Absent => Err(AccountError::NotFound),
            AccountStatus::Disabled => Err(AccountError::Disabled),
            AccountStatus::Active => Ok(()),
        }
    }
}
