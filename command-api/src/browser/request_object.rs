//! Signed request objects (RFC 9101, JAR) by value: `request` at
//! `/authorize` and at `/par`, verified with the client's registered keys;
//! what the claims may say is [`writ_wire::request_object`]'s.

use writ_edge::client_assertion::{signed_by_client, Refused};
use writ_edge::Form;

use super::request::KnownClient;
use crate::CommandState;

/// The authorization request a verified request object carries, as a form
/// the authorization endpoint's checks read; `Err` says why not, in words
/// a page or an `error_description` can show.
pub async fn unpack(
    state: &CommandState,
    client: &KnownClient,
    jwt: &str,
) -> Result<Form, &'static str> {
    if client.settings.jwks.is_none() && client.settings.jwks_uri.is_none() {
        return Err("this client has no registered keys to sign request objects with");
    }
    let signed = signed_by_client(
        &state.assertions.keys,
        &client.settings,
        jwt,
        &["exp", "iss", "aud"],
    )
    .await
    .map_err(|refused| match refused {
        Refused::Invalid(why) => why,
        _ => "the client's keys could not be read",
    })?;
    if !writ_edge::fapi2::admits(&signed.alg, client.settings.fapi2(state.fapi2)) {
        return Err("a FAPI 2.0 client's request objects are signed with ES256, EdDSA or PS256");
    }
    writ_wire::request_object::parameters(
        &signed.claims,
        signed.typ.as_deref(),
        &client.client_id,
        &state.issuer,
        state.executor.services().now().timestamp(),
    )
}
