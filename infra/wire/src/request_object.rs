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

use crate::authorization::{self, AUTHORIZATION_PARAMETERS};
use crate::form::Form;

/// `typ` of a request object (RFC 9101 §4).
pub const REQUEST_OBJECT_TYP: &str = "oauth-authz-req+jwt";

/// A request object names its own expiry; one that claims to live longer
/// than this, or whose `nbf` is older, is refused.
const MAX_LIFETIME_SECS: i64 = 3600;

/// Claims about the object itself, not parameters of the request.
const ENVELOPE: &[&str] = &["iss", "aud", "exp", "nbf", "iat", "jti", "client_id"];

/// Whether a JWT's `aud` (one string, or an array of them; RFC 7519 §4.1.3)
/// names one `acceptable` value, a trailing slash aside.
pub fn names_audience(claims: &Value, acceptable: impl Fn(&str) -> bool) -> bool {
    let names = |aud: &str| acceptable(aud.trim_end_matches('/'));
    match claims.get("aud") {
        Some(Value::String(aud)) => names(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(names),
        _ => false,
    }
}

/// The authorization request in a request object whose signature `client_id`'s
/// keys verified, with header `typ` (lower-cased, without `application/`),
/// as a form the authorization endpoint's checks read, at `now` (Unix
/// seconds); `Err` says why not, in words a page or an
/// `error_description` can show.
pub fn parameters(
    claims: &Value,
    typ: Option<&str>,
    client_id: &str,
    issuer: &str,
    now: i64,
) -> Result<Form, &'static str> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) {
        return Err("the request object's iss must be the client_id");
    }
    if !matches!(typ, None | Some("jwt") | Some(REQUEST_OBJECT_TYP))
        || text("sub") == Some(client_id)
    {
        return Err("a client assertion or other typed JWT is not a request object");
    }
    if claims
        .get("client_id")
        .is_some_and(|named| named.as_str() != Some(client_id))
    {
        return Err("the request object's client_id is another client's");
    }
    let issuer = issuer.trim_end_matches('/');
    if !names_audience(claims, |aud| aud == issuer) {
        return Err("the request object's aud must be the issuer");
    }
    let Some(exp) = claims["exp"].as_i64() else {
        return Err("the request object's exp must be a whole number of seconds");
    };
    if exp.saturating_sub(now) > MAX_LIFETIME_SECS {
        return Err("the request object must expire within an hour");
    }
    if let Some(nbf) = claims.get("nbf") {
        let Some(nbf) = nbf.as_i64() else {
            return Err("the request object's nbf must be a whole number of seconds");
        };
        if now.saturating_sub(nbf) > MAX_LIFETIME_SECS
            || exp.saturating_sub(nbf) > MAX_LIFETIME_SECS
        {
            return Err("the request object's nbf is more than an hour old or before its exp");
        }
    }
    if claims.get("request").is_some() || claims.get("request_uri").is_some() {
        return Err("a request object cannot hold another request or request_uri");
    }
    let mut pairs = vec![("client_id", client_id.to_owned())];
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
    if authorization::oversized(&form, AUTHORIZATION_PARAMETERS) {
        return Err("a parameter of the request object is too long");
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The adversarial review's case: an `nbf` of i64::MIN overflowed
    /// `now - nbf`, a panic in debug builds and a skipped bound in release.
    /// (An `exp` already past is the signature check's to refuse.)
    #[test]
    fn extreme_times_are_refused_not_overflowed() {
        let now = 1_800_000_000;
        let claims = |exp: i64, nbf: i64| json!({"iss": "app", "aud": "https://writ.example", "exp": exp, "nbf": nbf, "response_type": "code"});
        assert!(parameters(
            &claims(now + 60, now - 10),
            None,
            "app",
            "https://writ.example",
            now
        )
        .is_ok());
        assert!(parameters(
            &claims(now + 60, i64::MIN),
            None,
            "app",
            "https://writ.example",
            now
        )
        .is_err());
        assert!(parameters(
            &claims(i64::MAX, now),
            None,
            "app",
            "https://writ.example",
            now
        )
        .is_err());
    }
}
