//! Reading a strict form body ([`writ_wire::form`]) off a request.

use axum::body::Body;
use axum::http::{header, HeaderMap};

use crate::body::MAX_BODY_BYTES;
use crate::OAuthError;
pub use writ_wire::form::{Form, MAX_FORM_BYTES};

/// Reads a form body: POST with the form content type, under the cap.
pub async fn read(headers: &HeaderMap, body: Body) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(Form::parse(&capped_body(body).await?)?)
}

/// A request body of at most [`MAX_BODY_BYTES`]: one declared larger was
/// refused before it was read ([`crate::body`]); one sent without a
/// length is read up to the cap and then refused, 413 either way.
pub async fn capped_body(body: Body) -> Result<Vec<u8>, OAuthError> {
    use futures::StreamExt;
    use http_body::Body as _;
    // A `Content-Length` shows in the size hint: refused unread.
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        crate::body::discard_in_background(body);
        return Err(crate::body::too_large());
    }
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| crate::body::unreadable(&err))?;
        if kept.len() + chunk.len() > MAX_BODY_BYTES {
            crate::body::discard_stream_in_background(stream);
            return Err(crate::body::too_large());
        }
        kept.extend_from_slice(&chunk);
    }
    Ok(kept)
}
