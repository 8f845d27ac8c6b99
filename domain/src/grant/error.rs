use thiserror::Error;

/// Refusals that record nothing. Each maps to `invalid_grant` (or
/// `invalid_scope`) at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GrantError {
    #[error("a grant with this id already exists")]
    AlreadyExists,
    #[error("no such grant")]
    NotFound,
    #[error("the code is unknown")]
    UnknownCode,
    #[error("the grant belongs to another client")]
    ClientMismatch,
    #[error("the grant has been revoked")]
    Revoked,
    #[error("the code has expired")]
    CodeExpired,
    #[error("redirect_uri differs from the authorization request's")]
    RedirectUriMismatch,
    #[error("the refresh token is unknown")]
    UnknownRefreshToken,
    #[error("the refresh token has expired")]
    RefreshExpired,
    #[error("the requested scope exceeds the granted scope")]
    ScopeEscalation,
    #[error("this grant has no refresh token")]
    NotRefreshable,
    #[error("the token is unknown to this grant")]
    UnknownToken,
    #[error("lifetimes must be between one second and a few centuries")]
    ZeroLifetime,
    #[error("a requested resource was not granted")]
    ResourceNotGranted,
    /// RFC 8693: more ancestors than [`super::MAX_EXCHANGE_DEPTH`], or a
    /// lineage that does not end at its parent.
    #[error("the chain of exchanges is too long or malformed")]
    DelegationTooDeep,
    /// RFC 8628 §3.5 `authorization_pending`.
    #[error("the person has not answered yet")]
    AuthorizationPending,
    /// RFC 8628 §3.5 `access_denied`.
    #[error("the person denied the request")]
    DeviceAccessDenied,
    /// RFC 8628 §3.5 `expired_token`.
    #[error("the device code has expired")]
    DeviceCodeExpired,
    /// The verification page answered an authorization already answered.
    #[error("the request has already been answered")]
    AlreadyDecided,
    #[error("the DPoP proof's key is not the one the code or refresh token is bound to")]
    DpopKeyMismatch,
}
