//! What the browser routes accept, for the OpenAPI document. The handlers
//! read these fields from raw queries and forms, whose repeated-parameter
//! and CSRF checks the extractors of these types would not make.
#![allow(dead_code)] // The fields are only described, never read.

use utoipa::{IntoParams, ToSchema};

/// An authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect
/// Core §3.1.2.1). A signed `request` object (RFC 9101) or a
/// `request_uri` from `/par` stands for the request's parameters.
#[derive(IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuthorizationRequest {
    /// `code`.
    response_type: String,
    client_id: String,
    /// From `/par` (RFC 9126): with `client_id`, the whole request; every
    /// other parameter is then ignored.
    request_uri: Option<String>,
    /// A request object signed with one of the client's keys (RFC 9101):
    /// with `client_id`, the whole request.
    request: Option<String>,
    /// Exactly as registered; may be left out when the client has one.
    redirect_uri: Option<String>,
    /// Space-separated.
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    /// Required of public clients.
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// `none`, `login` or `consent`.
    prompt: Option<String>,
    /// Seconds since the last sign-in after which the person signs in again.
    max_age: Option<u64>,
    login_hint: Option<String>,
    /// `query` only.
    response_mode: Option<String>,
    /// RFC 8707 resource indicators; may repeat.
    resource: Option<String>,
    /// RFC 9449 §10: the SHA-256 thumbprint of the client's DPoP key; the
    /// code is redeemed only with a proof by it.
    dpop_jkt: Option<String>,
}

/// The sealed request a sign-in hands back to the authorization endpoint.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Resumption {
    /// Sealed to this browser; short-lived.
    request: String,
}

/// The sign-in form.
#[derive(ToSchema)]
pub struct SignInForm {
    username: String,
    password: String,
    /// The page's CSRF token, bound to this browser.
    csrf: String,
    /// The sealed authorization request, when the sign-in is for a client.
    request: Option<String>,
}

/// The consent form.
#[derive(ToSchema)]
pub struct ConsentForm {
    csrf: String,
    /// The sealed authorization request.
    request: String,
    /// `allow` or `deny`.
    decision: String,
}

/// The account page's withdrawal form.
#[derive(ToSchema)]
pub struct WithdrawalForm {
    csrf: String,
    /// The client whose consent is withdrawn.
    client_id: String,
}

/// An RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutRequest {
    /// An id_token Writ issued; expired is fine.
    id_token_hint: Option<String>,
    client_id: Option<String>,
    /// Registered for the client the hint or `client_id` names.
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// The logout confirmation page's form.
#[derive(ToSchema)]
pub struct LogoutConfirmation {
    csrf: String,
    /// Where to go after signing out, sealed to this browser.
    request: String,
}

/// The device code page's form (RFC 8628 §3.3).
#[derive(ToSchema)]
pub struct DeviceForm {
    csrf: String,
    /// As the device shows it; case, dashes and spaces do not matter.
    user_code: String,
}

/// The device confirmation page's form.
#[derive(ToSchema)]
pub struct DeviceDecisionForm {
    csrf: String,
    /// The grant shown, sealed to this browser.
    request: String,
    /// `allow` or `deny`.
    decision: String,
}
