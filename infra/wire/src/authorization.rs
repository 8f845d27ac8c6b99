//! The authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect
//! Core §3.1.2.1), validated in the order RFC 6749 §4.1.2.1 demands: the
//! client and its redirect URI first, and until both are known good every
//! problem is an error page, never a redirect (R2). After that, errors go
//! back to the client with `state` and `iss` (RFC 9207).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use writ_domain::client::ClientSettings;
use writ_domain::values::{ApplicationType, CodeChallenge, GrantType, RedirectUri, ScopeSet};

use crate::audience;
use crate::form::Form;

/// An authorization request that passed every check, waiting for the
/// person to sign in or consent; sealed into the pages' forms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    /// For the pages' wording; the client's state is checked where it matters.
    pub client_name: String,
    pub redirect_uri: String,
    pub redirect_uri_defaulted: bool,
    pub scopes: ScopeSet,
    pub audience: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub request_id: String,
    /// Set on the consent page: the person it was shown to.
    pub consent_for: Option<String>,
    /// The request named RFC 8707 resources that no administrator listed
    /// for the client (any absolute URI is accepted by default): the
    /// person is asked, with the resources shown, even when a remembered
    /// consent covers the scopes.
    #[serde(default)]
    pub open_resources: bool,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
}

/// Where an authorization request's parameters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The browser's query or form. `par_required` is the server-wide
    /// setting; a client's own is read from its settings.
    Browser { par_required: bool },
    /// Pushed by the authenticated client (RFC 9126): at the push, and
    /// again when its `request_uri` comes back through the browser.
    Pushed,
}

/// The parameters `/authorize` reads, and so the ones a pushed request
/// keeps (RFC 9126 §2.1; `client_id` is the authenticated client and
/// `resource` may repeat). Everything else is ignored, as at `/authorize`.
pub const AUTHORIZATION_PARAMETERS: &[&str] = &[
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "response_mode",
    "login_hint",
    "dpop_jkt",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// Why a request cannot go on.
#[derive(Debug)]
pub enum Refusal {
    /// Shown to the person; nothing is sent to the client.
    Page(&'static str),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// Parameters longer than this are not a real request (R63).
const MAX_PARAM_LEN: usize = 2048;

/// A client's row, as the authorization endpoint needs it.
pub struct KnownClient {
    pub client_id: String,
    pub settings: ClientSettings,
    /// The server's `allowed_resources` (RFC 8707); empty allows any.
    pub allowed_resources: Vec<String>,
}

/// RFC 8252 §7.3: a native client registered with a loopback IP may use any
/// port; everything else about the URI must match to the letter.
fn loopback_port_matches(registered: &str, requested: &str) -> bool {
    let strip_port = |uri: &str| -> Option<String> {
        let prefix = ["http://127.0.0.1", "http://[::1]"]
            .into_iter()
            .find(|p| uri.starts_with(p))?;
        let rest = &uri[prefix.len()..];
        let rest = match rest.strip_prefix(':') {
            Some(port_and_path) => {
                let digits = port_and_path.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 || digits > 5 {
                    return None;
                }
                &port_and_path[digits..]
            }
            None => rest,
        };
        (rest.is_empty() || rest.starts_with(['/', '?'])).then(|| format!("{prefix}{rest}"))
    };
    match (strip_port(registered), strip_port(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The redirect URI this request may use, or an error page (R1, R3, R4).
fn redirect_uri(
    client: &KnownClient,
    form: &Form,
    openid: bool,
) -> Result<(String, bool), Refusal> {
    let registered = &client.settings.redirect_uris;
    match form.get("redirect_uri") {
        Some(given) => {
            let exact = registered.iter().any(|uri| uri.as_str() == given);
            let native_loopback = client.settings.application_type == ApplicationType::Native
                && registered
                    .iter()
                    .any(|uri| loopback_port_matches(uri.as_str(), given));
            if exact || native_loopback {
                Ok((given.to_owned(), false))
            } else {
                Err(Refusal::Page(
                    "The redirect URI in this request is not registered for this application.",
                ))
            }
        }
        // OpenID Connect Core §3.1.2.1: redirect_uri is required.
        None if openid => Err(Refusal::Page(
            "This sign-in request names no redirect URI, which OpenID Connect requires.",
        )),
        None => match registered.as_slice() {
            [only] => Ok((only.as_str().to_owned(), true)),
            _ => Err(Refusal::Page(
                "This request names no redirect URI and the application has several.",
            )),
        },
    }
}

fn prompt(raw: Option<&str>) -> Result<Prompt, &'static str> {
    let mut prompt = Prompt::default();
    for value in raw.unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // Writ has one account per session; nothing to choose.
            "select_account" => {}
            _ => return Err("prompt has a value Writ does not know"),
        }
    }
    // OpenID Connect Core §3.1.2.1: none must stand alone.
    if prompt.none && (prompt.login || prompt.consent) {
        return Err("prompt=none cannot be combined with other values");
    }
    Ok(prompt)
}

/// Validates everything after the client and redirect URI; errors here are
/// redirected with `state`.
fn rest(
    client: &KnownClient,
    form: &Form,
    redirect: (String, bool),
    request_id: &str,
    now: DateTime<Utc>,
    origin: Origin,
) -> Result<Pending, Refusal> {
    let (redirect_uri, redirect_uri_defaulted) = redirect;
    let state = form.get("state").map(str::to_owned);
    let refuse = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    let settings = &client.settings;
    if let Origin::Browser { par_required } = origin {
        if par_required || settings.require_pushed_authorization_requests {
            return Err(refuse(
                "invalid_request",
                "this client must push its authorization requests first (RFC 9126)",
            ));
        }
    }
    match form.get("response_type") {
        None => return Err(refuse("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if !settings.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(refuse(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    if form
        .get("response_mode")
        .is_some_and(|mode| mode != "query")
    {
        return Err(refuse(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let scopes = audience::scopes(settings, form.get("scope"))
        .map_err(|e| refuse("invalid_scope", &e.description))?;
    let audience = audience::resolve(
        &client.client_id,
        settings,
        form.all("resource"),
        &client.allowed_resources,
    )
    .map_err(|e| refuse("invalid_target", &e.description))?;
    // RFC 7636 §4.3, RFC 9700 §2.1.1: S256 only; a challenge without a
    // method would mean `plain`, so it is refused too (R10).
    let code_challenge = match (
        form.get("code_challenge"),
        form.get("code_challenge_method"),
    ) {
        (None, None) if settings.public => {
            return Err(refuse(
                "invalid_request",
                "public clients must use PKCE (S256)",
            ))
        }
        // RFC 9126 leaves PKCE to the profile; FAPI 2.0 and Writ require
        // it of every pushed request.
        (None, None) if origin == Origin::Pushed => {
            return Err(refuse(
                "invalid_request",
                "a pushed request must carry a code_challenge (S256)",
            ))
        }
        (None, None) => None,
        (Some(challenge), Some("S256")) => {
            CodeChallenge::parse_s256(challenge).map_err(|_| {
                refuse(
                    "invalid_request",
                    "code_challenge must be 43 base64url characters",
                )
            })?;
            Some(challenge.to_owned())
        }
        (Some(_), None) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256",
            ))
        }
        (_, Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "only code_challenge_method=S256 is supported, with a code_challenge",
            ))
        }
    };
    // A SHA-256 thumbprint (RFC 7638) is 43 base64url characters.
    let dpop_jkt = form.get("dpop_jkt");
    if dpop_jkt.is_some_and(|jkt| {
        jkt.len() != 43
            || !jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(refuse(
            "invalid_request",
            "dpop_jkt must be a key's SHA-256 thumbprint, 43 base64url characters",
        ));
    }
    let prompt = prompt(form.get("prompt")).map_err(|why| refuse("invalid_request", why))?;
    let max_age = form
        .get("max_age")
        .map(|raw| raw.parse::<u64>())
        .transpose()
        .map_err(|_| {
            refuse(
                "invalid_request",
                "max_age must be a whole number of seconds",
            )
        })?;
    Ok(Pending {
        client_id: client.client_id.clone(),
        client_name: client.settings.name.clone(),
        redirect_uri,
        redirect_uri_defaulted,
        scopes,
        audience,
        state,
        nonce: form.get("nonce").map(str::to_owned),
        code_challenge,
        prompt,
        max_age,
        login_hint: form.get("login_hint").map(str::to_owned),
        requested_at: now,
        request_id: request_id.to_owned(),
        consent_for: None,
        open_resources: !form.all("resource").is_empty() && settings.audience.is_empty(),
        dpop_jkt: dpop_jkt.map(str::to_owned),
    })
}

/// Validates a whole request against its (already loaded) client.
pub fn validate(
    client: Option<&KnownClient>,
    form: &Form,
    request_id: &str,
    now: DateTime<Utc>,
    origin: Origin,
) -> Result<Pending, Refusal> {
    let Some(client) = client else {
        return Err(Refusal::Page(
            "The application that sent you here is not known to this server, or is disabled.",
        ));
    };
    let openid = form
        .get("scope")
        .is_some_and(|scope| scope.split(' ').any(|s| s == "openid"));
    let (redirect_uri, defaulted) = redirect_uri(client, form, openid)?;
    if RedirectUri::parse(&redirect_uri).is_err() {
        return Err(Refusal::Page("The registered redirect URI is not usable."));
    }
    rest(
        client,
        form,
        (redirect_uri, defaulted),
        request_id,
        now,
        origin,
    )
}

/// Parameters past the length cap, before anything else is looked at.
pub fn oversized(form: &Form, names: &[&str]) -> bool {
    names
        .iter()
        .any(|name| form.get(name).is_some_and(|v| v.len() > MAX_PARAM_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_ports_vary_but_nothing_else_does() {
        let registered = "http://127.0.0.1/cb";
        assert!(loopback_port_matches(
            registered,
            "http://127.0.0.1:51234/cb"
        ));
        assert!(loopback_port_matches(registered, "http://127.0.0.1/cb"));
        assert!(!loopback_port_matches(
            registered,
            "http://127.0.0.1:51234/cb/"
        ));
        assert!(!loopback_port_matches(
            registered,
            "http://127.0.0.1:80@evil.example/cb"
        ));
        assert!(!loopback_port_matches(
            registered,
            "http://localhost:5000/cb"
        ));
        assert!(!loopback_port_matches(
            "http://localhost/cb",
            "http://localhost:5000/cb"
        ));
        assert!(loopback_port_matches(
            "http://[::1]:8/cb?x=1",
            "http://[::1]:9/cb?x=1"
        ));
    }

    #[test]
    fn prompt_none_stands_alone() {
        assert!(prompt(Some("none login")).is_err());
        assert!(prompt(Some("bogus")).is_err());
        let p = prompt(Some("login consent")).unwrap_or_default();
        assert!(p.login && p.consent && !p.none);
    }
}
