use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{
    check_jwks, check_jwks_uri, AuthMethod, ClientCommand, ClientError, ClientEvent, ClientSettings,
};
use crate::values::{GrantType, IdTokenAlg, SecretHash};
use crate::Services;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientStatus {
    #[default]
    Unregistered,
    Active,
    Disabled,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Client {
    pub status: ClientStatus,
    pub client_id: String,
    pub settings: Option<ClientSettings>,
    pub secret_hash: Option<SecretHash>,
    /// RFC 7592: the registration access token's SHA-256.
    pub registration_token_hash: Option<SecretHash>,
    pub registered_at: Option<DateTime<Utc>>,
}

impl Aggregate for Client {
    const TYPE: &'static str = "Client";
    type Command = ClientCommand;
    type Event = ClientEvent;
    type Error = ClientError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            ClientCommand::Register {
                client_id,
                settings,
                secret_hash,
                registration_token_hash,
            } => {
                if self.status != ClientStatus::Unregistered {
                    return Err(ClientError::AlreadyRegistered);
                }
                check_settings(&settings)?;
                match (settings.uses_secret(), &secret_hash) {
                    (false, Some(_)) if settings.public => {
                        return Err(ClientError::PublicClientHasNoSecret)
                    }
                    (false, Some(_)) => return Err(ClientError::KeysRequired),
                    (true, None) => return Err(ClientError::ConfidentialClientNeedsSecret),
                    _ => {}
                }
                ClientEvent::ClientRegistered {
                    client_id,
                    settings,
                    secret_hash,
                    registered_at: now,
                    registration_token_hash,
                }
            }
            ClientCommand::RotateSecret { secret_hash } => {
                self.ensure_active()?;
                if self.secret_hash.is_none() {
                    return Err(ClientError::PublicClientHasNoSecret);
                }
                ClientEvent::ClientSecretRotated {
                    secret_hash,
                    rotated_at: now,
                }
            }
            ClientCommand::ChangeSettings { settings } => {
                self.ensure_active()?;
                check_settings(&settings)?;
                // Public, secret and keys are three kinds of client: one
                // never becomes another (a keys client turned public
                // could be named by anyone).
                if self
                    .settings
                    .as_ref()
                    .is_some_and(|current| current.public != settings.public)
                {
                    return Err(ClientError::AuthenticationKindChanged);
                }
                if settings.uses_secret() != self.secret_hash.is_some() {
                    // Switching between a secret and none (public, or keys
                    // of its own) would leave a secret behind or a client
                    // without any credential.
                    return Err(if settings.uses_secret() {
                        ClientError::ConfidentialClientNeedsSecret
                    } else if settings.public {
                        ClientError::PublicClientHasNoSecret
                    } else {
                        ClientError::KeysRequired
                    });
                }
                ClientEvent::ClientSettingsChanged {
                    settings,
                    changed_at: now,
                }
            }
            ClientCommand::RotateRegistrationToken { presented, next } => {
                self.ensure_active()?;
                if self.registration_token_hash.as_ref() != Some(&presented) {
                    return Err(ClientError::RegistrationTokenSuperseded);
                }
                ClientEvent::RegistrationTokenRotated {
                    token_hash: next,
                    rotated_at: now,
                }
            }
            ClientCommand::Disable { reason } => {
                self.ensure_active()?;
                ClientEvent::ClientDisabled {
                    reason,
                    disabled_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ClientEvent::ClientRegistered {
                client_id,
                settings,
                secret_hash,
                registered_at,
                registration_token_hash,
            } => {
                self.status = ClientStatus::Active;
                self.client_id = client_id;
                self.settings = Some(settings);
                self.secret_hash = secret_hash;
                self.registration_token_hash = registration_token_hash;
                self.registered_at = Some(registered_at);
            }
            ClientEvent::ClientSecretRotated { secret_hash, .. } => {
                self.secret_hash = Some(secret_hash);
            }
            ClientEvent::ClientSettingsChanged { settings, .. } => self.settings = Some(settings),
            ClientEvent::ClientDisabled { .. } => self.status = ClientStatus::Disabled,
            ClientEvent::RegistrationTokenRotated { token_hash, .. } => {
                self.registration_token_hash = Some(token_hash)
            }
        }
    }
}

impl Client {
    fn ensure_active(&self) -> Result<(), ClientError> {
        match self.status {
            ClientStatus::Unregistered => Err(ClientError::NotFound),
            ClientStatus::Disabled => Err(ClientError::Disabled),
            ClientStatus::Active => Ok(()),
        }
    }
}

fn check_settings(settings: &ClientSettings) -> Result<(), ClientError> {
    if settings.name.trim().is_empty() {
        return Err(ClientError::EmptyName);
    }
    if !crate::values::displayable(&settings.name) {
        return Err(ClientError::UndisplayableName);
    }
    if settings.grant_types.is_empty() {
        return Err(ClientError::NoGrantTypes);
    }
    if settings.grant_types.contains(&GrantType::AuthorizationCode)
        && settings.redirect_uris.is_empty()
    {
        return Err(ClientError::RedirectUriRequired);
    }
    if settings.public && settings.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(ClientError::PublicClientCredentials);
    }
    if settings.public && settings.grant_types.contains(&GrantType::TokenExchange) {
        return Err(ClientError::PublicTokenExchange);
    }
    // Introspection (RFC 7662 §2.1) authenticates its caller, which a
    // public client cannot do, so its resources would be dead settings.
    if settings.public && !settings.resources.is_empty() {
        return Err(ClientError::PublicResourceServer);
    }
    // Loopback http is allowed for web clients too (development setups);
    // only RFC 8252's variable-port exception is reserved to native
    // clients, and that is decided at the authorization endpoint.
    if settings.access_token_ttl_secs == 0 || settings.refresh_token_ttl_secs == 0 {
        return Err(ClientError::ZeroLifetime);
    }
    // The revocation feed authenticates with Basic credentials only.
    if settings.revocation_feed && !settings.uses_secret() {
        return Err(ClientError::RevocationFeedNeedsSecret);
    }
    // FAPI 2.0 §5.3.2: the profile is these settings together; a client
    // cannot hold the name of it without all of them.
    if settings.fapi2_security_profile
        && (settings.token_endpoint_auth_method != Some(AuthMethod::PrivateKeyJwt)
            || !settings.require_pushed_authorization_requests
            || !settings.dpop_bound_access_tokens
            || settings.grant_types.contains(&GrantType::Password)
            || !matches!(
                settings.id_token_signed_response_alg,
                Some(IdTokenAlg::ES256 | IdTokenAlg::EdDSA)
            ))
    {
        return Err(ClientError::Fapi2Profile);
    }
    if let Some(uri) = &settings.backchannel_logout_uri {
        if !super::is_server_side_uri(uri) {
            return Err(ClientError::UnusableBackchannelLogoutUri);
        }
    }
    check_keys(settings)
}

fn check_keys(settings: &ClientSettings) -> Result<(), ClientError> {
    let private_key_jwt = settings.token_endpoint_auth_method == Some(AuthMethod::PrivateKeyJwt);
    match (&settings.jwks, &settings.jwks_uri) {
        (None, None) if private_key_jwt => Err(ClientError::KeysRequired),
        (None, None) => Ok(()),
        _ if !private_key_jwt => Err(ClientError::KeysWithoutPrivateKeyJwt),
        (Some(_), Some(_)) => Err(ClientError::KeysRequired),
        _ if settings.public => Err(ClientError::KeysRequired),
        (Some(jwks), None) => check_jwks(jwks),
        (None, Some(uri)) => check_jwks_uri(uri),
    }
}
