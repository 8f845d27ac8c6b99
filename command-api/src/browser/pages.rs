//! Server-rendered pages (askama, escaped by default), the headers every
//! browser response carries, and the one way Writ redirects a browser.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    pub client_name: Option<&'a str>,
    pub error: Option<&'a str>,
    pub csrf: &'a str,
    pub request: &'a str,
    /// The sealed user code of a device verification to go on with.
    pub device: &'a str,
    pub username: &'a str,
}

#[derive(Template)]
#[template(path = "device.html")]
pub struct Device<'a> {
    pub error: Option<&'a str>,
    pub csrf: &'a str,
    pub user_code: &'a str,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
pub struct DeviceConfirm<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub user_code: &'a str,
    pub scopes: Vec<String>,
    pub csrf: &'a str,
    pub request: &'a str,
}

#[derive(Template)]
#[template(path = "device_done.html")]
pub struct DeviceDone<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct Consent<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<String>,
    /// RFC 8707 resources the client named itself, shown as they are.
    pub resources: &'a [String],
    pub csrf: &'a str,
    pub request: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct Error<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub struct ConsentRow {
    pub client_id: String,
    pub client_name: String,
    pub scopes: String,
    pub granted_at: String,
    pub granted_on: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub username: &'a str,
    pub consents: Vec<ConsentRow>,
    pub csrf: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct Logout<'a> {
    pub csrf: &'a str,
    pub request: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOut;

pub const STYLESHEET: &str = include_str!("../../assets/writ.css");

/// A page with its status; a template that fails to render is a plain 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a page template failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error page: never a redirect (R2, RFC 6749 §4.1.2.1).
pub fn error(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::SERVICE_UNAVAILABLE => "Try again shortly",
        StatusCode::FORBIDDEN => "This form has expired",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        _ => "This request cannot be completed",
    };
    render(status, &Error { title, message })
}

pub fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server cannot complete this now. Nothing was changed.",
    )
}

/// 303 See Other: after a POST the browser follows with a GET and never
/// re-posts the credentials (R7, RFC 9700 §4.11).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `base` with `params` appended to its query, keeping a registered query.
pub fn with_query(base: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            serializer.append_pair(name, value);
        }
    }
    let query = serializer.finish();
    if query.is_empty() {
        return base.to_owned();
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{query}")
}

/// R43, R44: no framing, no referrer, nothing but our own stylesheet; never
/// cached, since pages carry CSRF tokens. `form-action` is left out on
/// purpose: Chromium applies it to the redirect after a consent POST.
pub async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// The pages' stylesheet.
#[utoipa::path(
    get,
    path = "/assets/writ.css",
    tag = writ_edge::openapi::tag::BROWSER,
    responses((status = 200, description = "CSS.", content_type = "text/css"))
)]
pub async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// Scopes in words for the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are (your account identifier)".to_owned(),
        "profile" => "See your name".to_owned(),
        "email" => "See your email address".to_owned(),
        "offline_access" => "Keep access while you are not using it".to_owned(),
        other => format!("Use the permission “{other}”"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_join_a_registered_query() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("code", Some("c d")), ("state", None)]
            ),
            "https://a.example/cb?x=1&code=c+d"
        );
        assert_eq!(
            with_query("https://a.example/cb", &[("error", Some("access_denied"))]),
            "https://a.example/cb?error=access_denied"
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = Error {
            title: "t",
            message: "<script>alert(1)</script>",
        }
        .render()
        .unwrap_or_default();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }
}
