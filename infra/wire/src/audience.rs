//! Which audience and scopes a token request gets.

use writ_domain::client::ClientSettings;
use writ_domain::values::{ResourceUri, ScopeSet};

use crate::Invalid;

/// RFC 8707: the resources asked for, each an absolute URI without a
/// fragment. Any such URI is accepted unless restricted: by the client's
/// configured audience (then each must be one of it) and by the server's
/// `allowed_resources` (then each must be one of those). Without a
/// `resource`, the token is for the client's configured audience, or for
/// the client itself when none is configured.
pub fn resolve(
    client_id: &str,
    settings: &ClientSettings,
    resources: &[String],
    server_allowed: &[String],
) -> Result<Vec<String>, Invalid> {
    if resources.is_empty() {
        return Ok(if settings.audience.is_empty() {
            vec![client_id.to_owned()]
        } else {
            settings.audience.clone()
        });
    }
    let audience = well_formed(resources)?;
    for resource in &audience {
        if !settings.audience.is_empty() && !settings.audience.contains(resource) {
            return Err(invalid_target("this client may not request that resource"));
        }
        if !server_allowed.is_empty() && !server_allowed.contains(resource) {
            return Err(invalid_target(
                "this server does not issue tokens for that resource",
            ));
        }
    }
    Ok(audience)
}

/// RFC 8707 §2: each `resource` an absolute URI without a fragment; the
/// distinct ones, in order.
pub fn well_formed(resources: &[String]) -> Result<Vec<String>, Invalid> {
    let mut distinct: Vec<String> = Vec::new();
    for resource in resources {
        ResourceUri::parse(resource)
            .map_err(|_| invalid_target("resource must be an absolute URI without a fragment"))?;
        if !distinct.contains(resource) {
            distinct.push(resource.clone());
        }
    }
    Ok(distinct)
}

fn invalid_target(description: &str) -> Invalid {
    Invalid::target(description)
}

/// The requested scopes, which must be within the client's; without a
/// `scope` parameter, everything the client may have.
pub fn scopes(settings: &ClientSettings, requested: Option<&str>) -> Result<ScopeSet, Invalid> {
    let Some(raw) = requested else {
        return Ok(settings.scopes.clone());
    };
    let requested = ScopeSet::parse(raw)
        .map_err(|_| Invalid::scope("scope contains characters RFC 6749 does not allow"))?;
    if !requested.is_subset(&settings.scopes) {
        return Err(Invalid::scope(
            "the requested scope exceeds what this client may have",
        ));
    }
    Ok(requested)
}
