//! Which audience and scopes a token request gets.

use writ_domain::client::ClientSettings;
use writ_domain::values::ScopeSet;
use writ_edge::OAuthError;

/// RFC 8707: each `resource` must be one of the client's configured
/// audiences; without one, the token is for the client's configured
/// audience, or for the client itself when none is configured.
pub fn resolve(
    client_id: &str,
    settings: &ClientSettings,
    resources: &[String],
) -> Result<Vec<String>, OAuthError> {
    if resources.is_empty() {
        return Ok(if settings.audience.is_empty() {
            vec![client_id.to_owned()]
        } else {
            settings.audience.clone()
        });
    }
    let mut audience = Vec::new();
    for resource in resources {
        if resource.contains('#') || !resource.contains(':') {
            return Err(invalid_target(
                "resource must be an absolute URI without a fragment",
            ));
        }
        if !settings.audience.iter().any(|a| a == resource) {
            return Err(invalid_target("this client may not request that resource"));
        }
        if !audience.contains(resource) {
            audience.push(resource.clone());
        }
    }
    Ok(audience)
}

fn invalid_target(description: &str) -> OAuthError {
    OAuthError::new(
        axum::http::StatusCode::BAD_REQUEST,
        writ_edge::ErrorCode::InvalidTarget,
        description,
    )
}

/// The requested scopes, which must be within the client's; without a
/// `scope` parameter, everything the client may have.
pub fn scopes(settings: &ClientSettings, requested: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = requested else {
        return Ok(settings.scopes.clone());
    };
    let requested = ScopeSet::parse(raw).map_err(|_| {
        OAuthError::invalid_scope("scope contains characters RFC 6749 does not allow")
    })?;
    if !requested.is_subset(&settings.scopes) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds what this client may have",
        ));
    }
    Ok(requested)
}
