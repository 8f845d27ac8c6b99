//! `POST /par`, the pushed authorization request endpoint (RFC 9126): the
//! client sends its authorization request authenticated, every check of
//! the authorization endpoint runs now and a failure is this endpoint's
//! 400, and the browser then carries only the `request_uri` to
//! `/authorize`, which uses it once ([`take`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use writ_domain::pushed_request::{AuthorizationParameters, PushedRequest, PushedRequestCommand};
use writ_edge::dpop::{self, ProofFor, Refused};
use writ_edge::openapi::{tag, ErrorBody};
use writ_edge::{no_store, ClientRequest, ErrorCode, Form, OAuthError};
use writ_infra::crypto::{self, random_token, sha256_hex, Key};
use writ_store::executor::Stream;
use writ_store::{ExecuteError, Metadata};

use super::request::{self, KnownClient, Origin, Pending, Refusal, AUTHORIZATION_PARAMETERS};
use super::request_object;
use crate::metadata::client_metadata;
use crate::CommandState;

/// RFC 9126 §2.2's URN namespace for the references Writ hands out.
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The stream of a pushed request: the reference's hash, so the log
/// cannot be read for a usable `request_uri`.
fn stream_id(reference: &str) -> String {
    sha256_hex(reference.as_bytes())
}

/// `login_hint` may name a person; the event keeps it sealed under a key
/// derived from the reference, which is never stored: only the
/// `request_uri`'s holder can open it, and nobody once it is gone.
const LOGIN_HINT_SEAL: &str = "pushed login_hint";

fn login_hint_key(reference: &str) -> Key {
    let digest = Sha256::digest(format!("writ pushed login_hint v1\n{reference}"));
    Key(digest.into())
}

/// Pushes an authorization request (RFC 9126 §2) and answers 201 with its
/// single-use `request_uri` once the push is committed.
#[utoipa::path(
    post,
    path = "/par",
    tag = tag::OAUTH,
    request_body(content = crate::browser::described::AuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449 §10.1): binds the code to its key, as `dpop_jkt` does.")),
    responses(
        (status = 201, description = "`request_uri` and `expires_in` (RFC 9126 §2.2).", body = Object),
        (status = 400, description = "What `/authorize` would refuse: `invalid_request` (also for a `request_uri` inside the push, a missing or `plain` PKCE challenge, or a redirect URI that is not registered), `invalid_scope`, `invalid_target`, `unauthorized_client`, `unsupported_response_type`; `invalid_request_object` for a signed request object that does not verify; `invalid_dpop_proof` or `use_dpop_nonce` for a DPoP proof that fails.", body = ErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate`.", body = ErrorBody),
        (status = 429, description = "A public client's pushes from this address passed `ip_failure_limit`; `Retry-After` says when to try again.", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`.", body = ErrorBody),
    )
)]
pub async fn push(
    State(state): State<CommandState>,
    headers: HeaderMap,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    // Client authentication has already refused a body `client_id` that
    // differs from the authenticated one.
    let ClientRequest {
        client,
        form,
        request_id,
        address,
    } = request;
    crate::public_writes::count(&state, &client, &address, "pushed")?;
    if request::oversized(&form, AUTHORIZATION_PARAMETERS) {
        return Err(OAuthError::invalid_request(
            "a parameter of this request is too long",
        ));
    }
    if form.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "a pushed request cannot carry a request_uri (RFC 9126 §2.1)",
        ));
    }
    let known = KnownClient {
        client_id: client.client_id.clone(),
        settings: (*client.settings).clone(),
        allowed_resources: state.allowed_resources.clone(),
    };
    // RFC 9126 §3: a signed request object stands for the whole request;
    // what it carries is checked, and kept, as if it had been sent plain.
    let form = match form.get("request") {
        Some(jwt) => request_object::unpack(&state, &known, jwt)
            .await
            .map_err(|why| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidRequestObject,
                    why,
                )
            })?,
        None => form,
    };
    // FAPI 2.0 §5.3.2.2: the push names its redirect URI, even when the
    // client registered only one.
    if known.settings.fapi2(state.fapi2) && form.get("redirect_uri").is_none() {
        return Err(OAuthError::invalid_request(
            "a FAPI 2.0 client's pushed request must carry redirect_uri",
        ));
    }
    let now = state.executor.services().now();
    request::validate(Some(&known), &form, &request_id, now, Origin::Pushed)
        .map_err(refusal_as_error)?;
    // RFC 9449 §10.1: a proof sent with the push binds the code to its
    // key, as `dpop_jkt` does; the two must then agree.
    let proof_key = match dpop::header(&headers).map_err(Refused::at_token_endpoint)? {
        Some(proof) => {
            let request = ProofFor {
                method: "POST",
                path: "/par",
                access_token: None,
                bound_to: form.get("dpop_jkt"),
                client_id: &client.client_id,
                request_id: &request_id,
                fapi2: known.settings.fapi2(state.fapi2),
            };
            let accepted = state.dpop.accept(proof, &request).await;
            Some(accepted.map_err(Refused::at_token_endpoint)?.jkt)
        }
        None => None,
    };

    let reference = random_token();
    let stream = stream_id(&reference);
    let mut single = BTreeMap::new();
    for name in AUTHORIZATION_PARAMETERS {
        if let Some(value) = form.get(name) {
            let kept = match *name {
                "login_hint" => crypto::seal(
                    &login_hint_key(&reference),
                    LOGIN_HINT_SEAL,
                    value.as_bytes(),
                ),
                _ => value.to_owned(),
            };
            single.insert((*name).to_owned(), kept);
        }
    }
    if let Some(key) = proof_key {
        single.insert("dpop_jkt".to_owned(), key);
    }
    let ttl = state.browser.par_ttl;
    let command = PushedRequestCommand::Push {
        client_id: client.client_id.clone(),
        parameters: AuthorizationParameters {
            single,
            // Validated above; repeats would only lengthen the event.
            resources: crate::audience::well_formed(form.all("resource"))?,
        },
        client_auth_method: client.method.as_str().to_owned(),
        ttl_secs: ttl.as_secs(),
    };
    let metadata = client_metadata(&client, request_id);
    state
        .executor
        .execute_with::<PushedRequest>(&stream, command, &metadata, Vec::new(), Stream::New)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?;
    let body = json!({
        "request_uri": format!("{REQUEST_URI_PREFIX}{reference}"),
        "expires_in": ttl.as_secs(),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    no_store(&mut response);
    Ok(response)
}

/// `/authorize` would show a page or redirect; the pushing client is told
/// directly (RFC 9126 §2.3).
fn refusal_as_error(refusal: Refusal) -> OAuthError {
    let (error, description) = match refusal {
        Refusal::Page(message) => (ErrorCode::InvalidRequest, message.to_owned()),
        Refusal::Redirect {
            error, description, ..
        } => (
            ErrorCode::parse(error).unwrap_or(ErrorCode::InvalidRequest),
            description,
        ),
    };
    OAuthError::new(StatusCode::BAD_REQUEST, error, description)
}

/// Why a `request_uri` at `/authorize` leads nowhere.
#[derive(Debug)]
pub enum Unusable {
    /// Unknown, another client's, expired or used: the browser learns no
    /// more than that.
    Refused,
    Unavailable,
}

/// Uses a `request_uri` once, for `client`, and runs the authorization
/// endpoint's checks on its parameters again, against the client as it is
/// now (RFC 9126 §4). Other parameters of the front-channel request are
/// ignored, `client_id` aside.
pub async fn take(
    state: &CommandState,
    client: &KnownClient,
    request_uri: &str,
    request_id: &str,
) -> Result<Result<Pending, Refusal>, Unusable> {
    let reference = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .filter(|reference| !reference.is_empty())
        .ok_or(Unusable::Refused)?;
    let stream = stream_id(reference);
    let command = PushedRequestCommand::Use {
        client_id: client.client_id.clone(),
    };
    let metadata = Metadata::client(&client.client_id, request_id, None);
    let committed = match state
        .executor
        .execute::<PushedRequest>(&stream, command, &metadata)
        .await
    {
        Ok(committed) => committed,
        Err(ExecuteError::Rejected(_) | ExecuteError::Conflict) => return Err(Unusable::Refused),
        Err(_) => return Err(Unusable::Unavailable),
    };
    let parameters = committed.state.parameters;
    let hint = parameters
        .single
        .get("login_hint")
        .and_then(|sealed| crypto::open(&login_hint_key(reference), LOGIN_HINT_SEAL, sealed).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let plain = parameters
        .single
        .iter()
        .filter(|(name, _)| *name != "login_hint")
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let pairs = plain
        .chain(hint.as_deref().map(|hint| ("login_hint", hint)))
        .chain(
            parameters
                .resources
                .iter()
                .map(|r| ("resource", r.as_str())),
        );
    let Ok(form) = Form::from_pairs(pairs) else {
        return Err(Unusable::Refused);
    };
    let now = state.executor.services().now();
    Ok(request::validate(
        Some(client),
        &form,
        request_id,
        now,
        Origin::Pushed,
    ))
}
