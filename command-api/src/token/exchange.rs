//! Token exchange at `/token` (RFC 8693): a service holding a token issued
//! to it, or naming it as its audience, trades it for a token to call
//! another service with, on the same person's behalf. The new grant is a
//! child of the subject token's grant: a revoked ancestor ends it at once
//! (the token lookup checks every ancestor) and in the log (the policy
//! records its revocation). Scope only narrows; the audience is a client
//! Writ knows; an `actor_token` adds the actor to the `act` chain (§4.1).

use axum::response::Response;
use serde_json::Value;
use writ_domain::grant::{Actor, Grant, GrantCommand, Lineage, MAX_EXCHANGE_DEPTH};
use writ_domain::values::ScopeSet;
use writ_edge::{AuthenticatedClient, ErrorCode, OAuthError};
use writ_infra::tokens::{self, TokenKind, TokenRecord};
use writ_store::executor::Stream;
use writ_store::views::clients;

use crate::issue::{self, new_gid, Subject};
use crate::CommandState;

pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";

pub async fn grant(grant: &super::Grant<'_>) -> Result<Response, OAuthError> {
    let super::Grant {
        state,
        client,
        form,
        metadata,
        proof,
    } = *grant;
    // A public client proves nothing about who is exchanging.
    if client.settings.public {
        return Err(OAuthError::unauthorized_client(
            "public clients may not exchange tokens",
        ));
    }
    if form
        .get("requested_token_type")
        .is_some_and(|requested| requested != ACCESS_TOKEN)
    {
        return Err(OAuthError::invalid_request(
            "Writ issues access tokens only (requested_token_type)",
        ));
    }
    let kind = match form.require("subject_token_type")? {
        ACCESS_TOKEN => TokenKind::Access,
        REFRESH_TOKEN => TokenKind::Refresh,
        _ => {
            return Err(OAuthError::invalid_request(
                "subject_token_type must name an access or refresh token",
            ))
        }
    };
    let presented = form.require("subject_token")?;
    let subject = accepted(state, client, presented, kind, "subject_token").await?;
    // On a person's behalf: a client acting for itself has its own grant.
    let Some(sub) = subject.sub.clone() else {
        return Err(OAuthError::invalid_request(
            "the subject_token must be a person's; a client acting for itself uses client_credentials",
        ));
    };
    let actor = match (form.get("actor_token"), form.get("actor_token_type")) {
        // The actor is this client, proving it with a token of its own: a
        // token others presented to it names them, not it.
        (Some(token), Some(ACCESS_TOKEN)) => Some(
            accepted(state, client, token, TokenKind::Access, "actor_token")
                .await?
                .clone(),
        )
        .filter(|actor: &TokenRecord| actor.client_id == client.client_id)
        .ok_or_else(|| {
            OAuthError::invalid_request("the actor_token must be one issued to this client")
        })
        .map(Some)?,
        (None, None) => None,
        _ => {
            return Err(OAuthError::invalid_request(
                "actor_token is an access token, with actor_token_type naming it",
            ))
        }
    };
    let act = actors(&subject, actor.as_ref())?;
    if !may_act_admits(may_act_of(presented).as_ref(), act.as_ref()) {
        return Err(OAuthError::invalid_request(
            "the subject_token's may_act does not name this actor",
        ));
    }
    let scopes = narrowed_scopes(&subject, form.get("scope"))?;
    let audience = target(state, &subject, form.get("audience"), form.all("resource")).await?;
    let mut ancestors = subject.ancestors.clone();
    ancestors.push(subject.gid.clone());
    if ancestors.len() > MAX_EXCHANGE_DEPTH {
        return Err(OAuthError::invalid_request(
            "the chain of exchanges behind this subject_token is too long",
        ));
    }
    // A refresh token bound to a DPoP key (RFC 9449 §5) is exchanged only
    // by a request proving that key, as it is refreshed.
    let bound_to = (kind == TokenKind::Refresh)
        .then_some(subject.jkt.as_deref())
        .flatten();
    let jkt = proof.key(state, client, bound_to).await?;
    let mut prepared = issue::prepare(state, &client.settings, false, jkt)?;
    // Never outliving what it was exchanged from.
    prepared.request.access_ttl_secs = prepared
        .request
        .access_ttl_secs
        .min(seconds_left(state, &subject));
    let gid = new_gid();
    let command = GrantCommand::Exchange {
        gid: gid.clone(),
        client_id: client.client_id.clone(),
        sub: Some(sub.clone()),
        scopes,
        audience: audience.clone(),
        lineage: Lineage {
            parent_gid: subject.gid.clone(),
            ancestors,
            act: act.clone(),
            subject_token_type: form.require("subject_token_type")?.to_owned(),
        },
        tokens: prepared.request.clone(),
    };
    let committed = state
        .executor
        .execute_with::<Grant>(&gid, command, metadata, Vec::new(), Stream::New)
        .await
        .map_err(issue::refused)?;
    let act = act.and_then(|act| serde_json::to_value(act).ok());
    let issued = issue::body(
        state,
        Subject {
            client_id: &client.client_id,
            sub: Some(&sub),
            audience: &audience,
            gid: &gid,
            act: act.as_ref(),
        },
        &committed.events,
        prepared,
    )?;
    let mut body = issued.body;
    body["issued_token_type"] = Value::String(ACCESS_TOKEN.to_owned());
    Ok(issue::send(body))
}

/// A token of this issuer that is active and that this client may hold:
/// issued to it, or (an access token) naming it as audience. Anything
/// else is §2.2.2's `invalid_request`, alike for every reason.
async fn accepted(
    state: &CommandState,
    client: &AuthenticatedClient,
    presented: &str,
    kind: TokenKind,
    name: &str,
) -> Result<TokenRecord, OAuthError> {
    let now = state.executor.services().now();
    tokens::find(&state.store, &state.keys, presented)
        .await
        .map_err(|e| OAuthError::unavailable().because(e))?
        .filter(|record| {
            record.kind == kind
                && record.is_active(now)
                && record.may_be_seen_by(&client.client_id, &client.settings.resources)
        })
        .ok_or_else(|| {
            OAuthError::invalid_request(format!(
                "the {name} is invalid, expired, revoked, or not one this client may exchange"
            ))
        })
}

/// §4.1: the actor token's holder acts now, and before it whoever acted
/// in the subject token; without an actor the chain stays as it was. A
/// chain that cannot be read is refused rather than cut short.
fn actors(subject: &TokenRecord, actor: Option<&TokenRecord>) -> Result<Option<Actor>, OAuthError> {
    let earlier: Option<Actor> = match subject.act.clone() {
        None => None,
        Some(act) => Some(serde_json::from_value(act).map_err(|_| {
            OAuthError::invalid_request("the subject_token's actors cannot be read")
        })?),
    };
    Ok(match actor {
        Some(actor) => Some(Actor {
            sub: actor.sub.clone().unwrap_or_else(|| actor.client_id.clone()),
            client_id: actor.client_id.clone(),
            act: earlier.map(Box::new),
        }),
        None => earlier,
    })
}

/// Whole seconds until the subject token expires, at least one (it is
/// active, so it has not).
fn seconds_left(state: &CommandState, subject: &TokenRecord) -> u64 {
    let now = state.executor.services().now();
    (subject.expiry() - now).num_seconds().max(1) as u64
}

/// §4.4: the subject token's `may_act`, when it is a JWT carrying one.
/// Writ's own tokens carry none; the lookup has verified the signature.
fn may_act_of(presented: &str) -> Option<Value> {
    let payload = presented.split('.').nth(1)?;
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("may_act").cloned()
}

/// Every member `may_act` names must be the current actor's.
fn may_act_admits(may_act: Option<&Value>, actor: Option<&Actor>) -> bool {
    let Some(may_act) = may_act else {
        return true;
    };
    let Some(actor) = actor else {
        return false;
    };
    let names = |member: &str, value: &str| {
        may_act
            .get(member)
            .is_none_or(|named| named.as_str() == Some(value))
    };
    may_act.is_object() && names("sub", &actor.sub) && names("client_id", &actor.client_id)
}

/// §2.1 `scope`: within the subject token's, never wider.
fn narrowed_scopes(subject: &TokenRecord, requested: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let held = ScopeSet::parse(&subject.scopes).unwrap_or_default();
    let Some(raw) = requested else {
        return Ok(held);
    };
    let requested = ScopeSet::parse(raw).map_err(|_| {
        OAuthError::invalid_scope("scope contains characters RFC 6749 does not allow")
    })?;
    if !requested.is_subset(&held) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds the subject_token's",
        ));
    }
    Ok(requested)
}

/// §2.1 `audience` and `resource`: one registered client the new token is
/// for (retargeting, not widening), or resources the subject token holds,
/// or else the subject token's own audience.
async fn target(
    state: &CommandState,
    subject: &TokenRecord,
    audience: Option<&str>,
    resources: &[String],
) -> Result<Vec<String>, OAuthError> {
    let invalid_target = |why: &str| {
        OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            ErrorCode::InvalidTarget,
            why,
        )
    };
    if let Some(audience) = audience {
        let known = clients::active_settings(state.store.db(), audience)
            .await
            .map_err(|e| OAuthError::unavailable().because(e))?;
        return match known {
            Some(_) if resources.is_empty() => Ok(vec![audience.to_owned()]),
            Some(_) => Err(invalid_target("send audience or resource, not both")),
            None => Err(invalid_target(
                "audience must be the client_id of a registered client",
            )),
        };
    }
    if resources.is_empty() {
        return Ok(subject.audience.clone());
    }
    if resources
        .iter()
        .any(|resource| !subject.audience.contains(resource))
    {
        return Err(invalid_target(
            "a resource the subject_token is not for was asked",
        ));
    }
    Ok(resources.to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn actor(client_id: &str) -> Actor {
        Actor {
            sub: client_id.to_owned(),
            client_id: client_id.to_owned(),
            act: None,
        }
    }

    #[test]
    fn may_act_admits_only_the_actor_it_names() {
        assert!(may_act_admits(None, None), "no may_act, no condition");
        assert!(may_act_admits(None, Some(&actor("b"))));
        let for_b = json!({"client_id": "b"});
        assert!(may_act_admits(Some(&for_b), Some(&actor("b"))));
        assert!(!may_act_admits(Some(&for_b), Some(&actor("c"))));
        assert!(!may_act_admits(Some(&for_b), None), "an actor is required");
        let both = json!({"sub": "b", "client_id": "b"});
        assert!(may_act_admits(Some(&both), Some(&actor("b"))));
        assert!(
            !may_act_admits(Some(&json!("b")), Some(&actor("b"))),
            "not an object"
        );
    }

    #[test]
    fn may_act_is_read_from_a_jwt_payload_only() {
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"sub":"s1","may_act":{"client_id":"b"}}"#,
        );
        assert_eq!(
            may_act_of(&format!("h.{payload}.s")),
            Some(json!({"client_id": "b"}))
        );
        assert_eq!(may_act_of("an-opaque-token"), None);
        assert_eq!(may_act_of("h.!!!.s"), None);
    }
}
