//! The query string read into a type. A malformed one (a parameter
//! repeated, or unreadable) is RFC 6749's `invalid_request`; axum's own
//! rejection is plain text.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::OAuthError;

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, OAuthError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|_| {
                OAuthError::invalid_request(
                    "the query is malformed: a parameter is repeated or unreadable",
                )
            })
    }
}
