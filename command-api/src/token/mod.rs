//! `POST /token` (RFC 6749 §3.2): authenticate the client, check that it
//! may use the grant type, then run the grant's command. A response leaves
//! only after its events, and the inline rows introspection reads, are
//! committed.

mod authorization_code;
mod client_credentials;
mod password;
mod refresh;

use axum::extract::State;
use axum::response::Response;
use writ_domain::values::GrantType;
use writ_edge::{ClientRequest, OAuthError};
use writ_store::Metadata;

use crate::CommandState;

pub async fn token(
    State(state): State<CommandState>,
    request: ClientRequest,
) -> Result<Response, OAuthError> {
    let ClientRequest {
        client,
        form,
        request_id,
        address,
    } = request;
    let state = &state;
    let grant_type = form.require("grant_type")?;
    let Some(grant_type) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            axum::http::StatusCode::BAD_REQUEST,
            writ_edge::ErrorCode::UnsupportedGrantType,
            "grant_type is not one Writ supports here",
        ));
    };
    if !client.settings.grant_types.contains(&grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use the {} grant",
            grant_type.as_str()
        )));
    }
    let metadata = Metadata {
        actor: format!("client:{}", client.client_id),
        request_id,
        client_id: Some(client.client_id.clone()),
    };
    match grant_type {
        GrantType::ClientCredentials => {
            client_credentials::grant(state, &client, &form, &metadata).await
        }
        GrantType::RefreshToken => refresh::grant(state, &client, &form, &metadata).await,
        GrantType::Password => password::grant(state, &client, &form, &metadata, address.0).await,
        GrantType::AuthorizationCode => {
            authorization_code::grant(state, &client, &form, &metadata).await
        }
    }
}
