use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    #[error("a client with this id already exists")]
    AlreadyRegistered,
    #[error("no such client")]
    NotFound,
    #[error("the client is disabled")]
    Disabled,
    #[error("a public client has no secret")]
    PublicClientHasNoSecret,
    #[error("a confidential client needs a secret")]
    ConfidentialClientNeedsSecret,
    #[error("the client name must not be empty")]
    EmptyName,
    #[error("the client name must not contain control or invisible format characters")]
    UndisplayableName,
    #[error("at least one grant type is required")]
    NoGrantTypes,
    #[error("the authorization_code grant needs at least one redirect URI")]
    RedirectUriRequired,
    #[error("public clients cannot use the client_credentials grant")]
    PublicClientCredentials,
    #[error("public clients cannot exchange tokens (RFC 8693)")]
    PublicTokenExchange,
    #[error("only a confidential client can introspect tokens for resources")]
    PublicResourceServer,
    #[error("token lifetimes must be at least one second")]
    ZeroLifetime,
    #[error("private_key_jwt needs exactly one of jwks and jwks_uri, and no secret")]
    KeysRequired,
    #[error("jwks and jwks_uri are for private_key_jwt clients only")]
    KeysWithoutPrivateKeyJwt,
    #[error("{0}")]
    UnusableKeys(String),
    #[error("backchannel_logout_uri must be https, or http on a loopback address, with no fragment, and not a private, link-local or metadata address")]
    UnusableBackchannelLogoutUri,
    #[error("a client cannot switch between a secret, keys and none; register a new one")]
    AuthenticationKindChanged,
    #[error("only a client with a secret can subscribe to the revocation feed")]
    RevocationFeedNeedsSecret,
    #[error("the registration access token is no longer this client's")]
    RegistrationTokenSuperseded,
    #[error("a FAPI 2.0 client authenticates with private_key_jwt, pushes its authorization requests, has DPoP-bound tokens, no password grant and id_tokens signed with ES256 or EdDSA")]
    Fapi2Profile,
}
