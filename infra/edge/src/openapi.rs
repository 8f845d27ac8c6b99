//! The OpenAPI document each process serves at `/openapi.json`. Every
//! route is registered through utoipa-axum's `routes!`, which takes the
//! path and methods from the handler's `#[utoipa::path]`: a handler is in
//! both the router and the document, or in neither.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ErrorCode;

// The security schemes' names, which operations name as literals
// (`security(("access_token" = []))`: the macro takes no constants).

/// A client authenticating with HTTP Basic (`client_secret_basic`).
const CLIENT_BASIC: &str = "client_secret_basic";
/// An OAuth access token (RFC 6750).
const ACCESS_TOKEN: &str = "access_token";
/// The registration endpoint's initial access token (RFC 7591 §3).
const INITIAL_ACCESS_TOKEN: &str = "initial_access_token";
/// The audit API's own bearer token (`audit_token`).
const AUDIT_TOKEN: &str = "audit_token";
/// A registered client's own token for managing it (RFC 7592).
const REGISTRATION_ACCESS_TOKEN: &str = "registration_access_token";

/// The tags operations are grouped under.
pub mod tag {
    pub const OAUTH: &str = "OAuth 2.1 and OpenID Connect";
    pub const BROWSER: &str = "Browser pages";
    pub const AUDIT: &str = "Audit";
    pub const OPERATIONS: &str = "Operations";
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Writ",
        description = "An OAuth 2.1 and OpenID Connect authorization server. This document lists the routes this process serves: `writ serve` serves them all; the split deployment's command and query APIs each serve their half."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody, ErrorCode, TokenAndHint))
)]
struct Base;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        for (name, scheme, description) in [
            (
                CLIENT_BASIC,
                HttpAuthScheme::Basic,
                "The client's id and secret, form-encoded (RFC 6749 §2.3.1). `client_secret_post` sends them as the form fields `client_id` and `client_secret` instead.",
            ),
            (ACCESS_TOKEN, HttpAuthScheme::Bearer, "An access token Writ issued."),
            (
                INITIAL_ACCESS_TOKEN,
                HttpAuthScheme::Bearer,
                "The server's initial access token (`registration_token`).",
            ),
            (AUDIT_TOKEN, HttpAuthScheme::Bearer, "The server's audit token (`audit_token`)."),
            (
                REGISTRATION_ACCESS_TOKEN,
                HttpAuthScheme::Bearer,
                "The registration access token `/register` gave the client (RFC 7592).",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(scheme)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// An RFC 6749 §5.2 error. `WWW-Authenticate` accompanies a 401.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the JSON `OAuthError` renders.
pub struct ErrorBody {
    error: ErrorCode,
    /// Readable by a developer, never by a program.
    error_description: String,
}

/// The form of revocation (RFC 7009 §2.1) and introspection (RFC 7662
/// §2.1): the token, and optionally what kind it is. The hint is only a
/// hint: the lookup finds either kind.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the form; handlers read it as `ClientRequest`.
pub struct TokenAndHint {
    token: String,
    #[schema(pattern = "^(access_token|refresh_token)$")]
    token_type_hint: Option<String>,
    /// With `client_secret_post`.
    client_id: Option<String>,
    /// With `client_secret_post`.
    client_secret: Option<String>,
}

/// An empty router holding the document's title, the security schemes and
/// the error schema the operations refer to; a process's routes are
/// merged into it.
pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::with_openapi(Base::openapi())
}

/// The OpenAPI 3.1 document describing every route of this process.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tag::OPERATIONS,
    responses((status = 200, description = "This document.", content_type = "application/json"))
)]
async fn openapi_document() {}

/// Splits `app` into its router and document, and serves the document
/// (which lists itself) at `/openapi.json`.
pub fn serve_document(app: OpenApiRouter) -> axum::Router {
    let (router, mut document) = app.split_for_parts();
    document.merge(describing_the_document());
    let rendered = axum::body::Bytes::from(document.to_pretty_json().unwrap_or_default());
    let document = axum::routing::get(move || {
        let rendered = rendered.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], rendered).into_response() }
    });
    router.route("/openapi.json", document)
}

/// `/openapi.json`'s own entry. Its handler only lends the description:
/// the document is known once the router is complete, so the route serves
/// a rendered copy instead.
fn describing_the_document() -> Document {
    let (_, document) = OpenApiRouter::<()>::new()
        .routes(routes!(openapi_document))
        .split_for_parts();
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_itself_and_the_security_schemes() {
        let app: OpenApiRouter = router();
        let (_, mut document) = app.split_for_parts();
        document.merge(describing_the_document());
        let json: serde_json::Value =
            serde_json::from_str(&document.to_json().unwrap_or_default()).unwrap_or_default();
        assert_eq!(json["openapi"], "3.1.0");
        assert!(json["paths"]["/openapi.json"]["get"].is_object(), "{json}");
        for scheme in [
            CLIENT_BASIC,
            ACCESS_TOKEN,
            INITIAL_ACCESS_TOKEN,
            AUDIT_TOKEN,
            REGISTRATION_ACCESS_TOKEN,
        ] {
            assert!(
                json["components"]["securitySchemes"][scheme].is_object(),
                "{scheme}"
            );
        }
        assert_eq!(
            json["components"]["schemas"]["ErrorCode"]["enum"][0],
            "invalid_request"
        );
    }
}
