//! Signed request objects (RFC 9101, JAR) by value: `request` at
//! `/authorize` and at `/par`. The object's claims *are* the request: the
//! parameters beside it are ignored but for `client_id` (§5), which must
//! agree. Only a client with registered keys can sign one, with an
//! asymmetric algorithm; `iss` is the client, `aud` the issuer, `exp`
//! required and at most an hour ahead, and `nbf`, when given, passed, at
//! most an hour old and at most an hour before `exp` (FAPI 2.0's bounds,
//! without requiring `nbf`). A request object is never a client
//! assertion: one typed as such, or with the client as `sub`, is refused.
//! Fetching a `request_uri` by reference is never done: only `/par`'s own
//! references are accepted.

use serde_json::Value;
use writ_edge::client_assertion::{names_audience, signed_by_client, Refused, REQUEST_OBJECT_TYP};
use writ_edge::Form;

use super::request::{self, KnownClient, AUTHORIZATION_PARAMETERS};
use crate::CommandState;

/// A request object names its own expiry; one that claims to live longer
/// than this, or whose `nbf` is older, is refused.
const MAX_LIFETIME_SECS: i64 = 3600;

/// Claims about the object itself, not parameters of the request.
const ENVELOPE: &[&str] = &["iss", "aud", "exp", "nbf", "iat", "jti", "client_id"];

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
    let claims = signed.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client.client_id.as_str()) {
        return Err("the request object's iss must be the client_id");
    }
    if !matches!(
        signed.typ.as_deref(),
        None | Some("jwt") | Some(REQUEST_OBJECT_TYP)
    ) || text("sub") == Some(client.client_id.as_str())
    {
        return Err("a client assertion or other typed JWT is not a request object");
    }
    if claims
        .get("client_id")
        .is_some_and(|named| named.as_str() != Some(client.client_id.as_str()))
    {
        return Err("the request object's client_id is another client's");
    }
    let issuer = state.issuer.trim_end_matches('/');
    if !names_audience(&claims, |aud| aud == issuer) {
        return Err("the request object's aud must be the issuer");
    }
    let now = state.executor.services().now().timestamp();
    let Some(exp) = claims["exp"].as_i64() else {
        return Err("the request object's exp must be a whole number of seconds");
    };
    if exp - now > MAX_LIFETIME_SECS {
        return Err("the request object must expire within an hour");
    }
    if let Some(nbf) = claims.get("nbf") {
        let Some(nbf) = nbf.as_i64() else {
            return Err("the request object's nbf must be a whole number of seconds");
        };
        if now - nbf > MAX_LIFETIME_SECS || exp - nbf > MAX_LIFETIME_SECS {
            return Err("the request object's nbf is more than an hour old or before its exp");
        }
    }
    if claims.get("request").is_some() || claims.get("request_uri").is_some() {
        return Err("a request object cannot hold another request or request_uri");
    }
    let mut pairs = vec![("client_id", client.client_id.clone())];
    let Some(members) = claims.as_object() else {
        return Err("the request object's claims are not an object");
    };
    for (name, value) in members {
        if ENVELOPE.contains(&name.as_str()) {
            continue;
        }
        let read = AUTHORIZATION_PARAMETERS.contains(&name.as_str()) || name == "resource";
        match (name.as_str(), value) {
            (_, Value::String(text)) => pairs.push((name.as_str(), text.clone())),
            ("max_age", Value::Number(number)) if number.is_u64() => {
                pairs.push((name.as_str(), number.to_string()))
            }
            ("resource", Value::Array(resources)) => {
                for resource in resources {
                    let Some(resource) = resource.as_str() else {
                        return Err("resource must be a string or an array of strings");
                    };
                    pairs.push(("resource", resource.to_owned()));
                }
            }
            // A parameter Writ reads, in a shape it does not (a `prompt`
            // array, a `max_age` of `true`), would otherwise vanish and
            // quietly drop what the client asked for.
            _ if read => return Err("a parameter of the request object has the wrong type"),
            // Parameters Writ does not read (`claims`, …) stay ignored, as
            // unknown ones are at `/authorize`.
            _ => {}
        }
    }
    let form = Form::from_pairs(pairs.iter().map(|(name, value)| (*name, value.as_str())))
        .map_err(|_| "the request object could not be read as parameters")?;
    // R63 applies inside the object as outside it.
    if request::oversized(&form, AUTHORIZATION_PARAMETERS) {
        return Err("a parameter of the request object is too long");
    }
    Ok(form)
}
