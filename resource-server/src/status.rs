//! Checking a JWT's entry in Writ's token status list
//! (draft-ietf-oauth-status-list §8.3) instead of asking Writ per request:
//! the list is fetched once per `ttl` (at most [`Config::status_list_max_ttl`]),
//! verified against Writ's JWKS like the tokens themselves, and kept in
//! memory; each request then reads one bit.
//!
//! [`Config::status_list_max_ttl`]: crate::Config::status_list_max_ttl

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use writ_protocol::status_list::{
    StatusList, StatusListClaims, StatusListReference, MEDIA_TYPE, TOKEN_TYPE, VALID,
};

use crate::rejection::Rejection;
use crate::verify::ResourceServer;

/// Lists kept at once; one process names one list at a time, so a
/// resource server meets few. Past it, the stalest is dropped.
const MAX_LISTS: usize = 64;
/// A signed list larger than this is refused unread.
const MAX_BODY: usize = 4 << 20;

#[derive(Default)]
pub(crate) struct StatusLists {
    lists: Mutex<HashMap<String, Kept>>,
    /// One fetch at a time: requests that find a list stale wait for the
    /// one fetch instead of each making their own.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Kept {
    list: Arc<StatusList>,
    /// Fetch again after this (`ttl`).
    fresh_until: Instant,
    /// Never rely on it after this (`exp`).
    usable_until: Option<i64>,
}

impl StatusLists {
    fn kept(&self, uri: &str) -> Option<Kept> {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri)
            .cloned()
    }

    fn keep(&self, uri: &str, kept: Kept) {
        let mut lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        if lists.len() >= MAX_LISTS && !lists.contains_key(uri) {
            let stalest = lists
                .iter()
                .min_by_key(|(_, kept)| kept.fresh_until)
                .map(|(uri, _)| uri.clone());
            if let Some(stalest) = stalest {
                lists.remove(&stalest);
            }
        }
        lists.insert(uri.to_owned(), kept);
    }
}

/// Refuses a token whose entry is not VALID, that names no entry, or whose
/// list cannot be had (503: its state is unknown, not bad).
pub(crate) async fn check(
    server: &ResourceServer,
    lists: &StatusLists,
    claims: &Value,
) -> Result<(), Rejection> {
    let reference: StatusListReference =
        serde_json::from_value(claims["status"]["status_list"].clone())
            .map_err(|_| Rejection::invalid_token("the token names no status list entry"))?;
    let list = list(server, lists, &reference.uri).await?;
    match list.get(reference.idx) {
        Some(VALID) => Ok(()),
        Some(_) => Err(Rejection::invalid_token("the token was revoked")),
        None => Err(Rejection::invalid_token(
            "the token's status list entry is beyond its list",
        )),
    }
}

async fn list(
    server: &ResourceServer,
    lists: &StatusLists,
    uri: &str,
) -> Result<Arc<StatusList>, Rejection> {
    let now = Instant::now();
    if let Some(kept) = lists.kept(uri).filter(|kept| kept.fresh_until > now) {
        return Ok(kept.list);
    }
    let _one_fetch = lists.fetching.lock().await;
    if let Some(kept) = lists
        .kept(uri)
        .filter(|kept| kept.fresh_until > Instant::now())
    {
        return Ok(kept.list);
    }
    match fetch(server, uri).await {
        Ok(kept) => {
            lists.keep(uri, kept.clone());
            Ok(kept.list)
        }
        Err(why) => {
            // §13.7: past its `ttl` a list should be fetched again, but it
            // may be relied on until its `exp`; Writ being unreachable for
            // a moment does not refuse every token.
            let unix_now = chrono::Utc::now().timestamp();
            let stale = lists
                .kept(uri)
                .filter(|kept| kept.usable_until.is_some_and(|exp| exp > unix_now));
            tracing::warn!(
                uri,
                why,
                stale = stale.is_some(),
                "cannot refresh a status list"
            );
            stale
                .map(|kept| kept.list)
                .ok_or_else(Rejection::unavailable)
        }
    }
}

async fn fetch(server: &ResourceServer, uri: &str) -> Result<Kept, &'static str> {
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err("the list's URI is not http(s)");
    }
    let response = server
        .http()
        .get(uri)
        .header(reqwest::header::ACCEPT, MEDIA_TYPE)
        .send()
        .await
        .map_err(|_| "the list cannot be fetched")?
        .error_for_status()
        .map_err(|_| "the list's server refused")?;
    let typed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case(MEDIA_TYPE));
    if !typed || response.content_length().unwrap_or(0) > MAX_BODY as u64 {
        return Err("the answer is not a status list token");
    }
    let body = response
        .bytes()
        .await
        .map_err(|_| "the list cannot be read")?;
    if body.len() > MAX_BODY {
        return Err("the list is too large");
    }
    let token = std::str::from_utf8(&body).map_err(|_| "the list is not text")?;
    let verified = server
        .verify_signed(token.trim())
        .await
        .ok_or("the list does not verify against Writ's keys")?;
    if verified.header["typ"].as_str() != Some(TOKEN_TYPE) {
        return Err("the list's typ is not statuslist+jwt");
    }
    let claims: StatusListClaims =
        serde_json::from_value(verified.claims).map_err(|_| "the list's claims are malformed")?;
    if claims.sub != uri {
        return Err("the list names another URI (sub)");
    }
    let now = chrono::Utc::now().timestamp();
    let skew = server.config().skew.as_secs() as i64;
    if claims.exp.is_some_and(|exp| exp <= now) || claims.iat > now + skew {
        return Err("the list is expired or issued in the future");
    }
    let list = StatusList::decode(&claims.status_list).map_err(|_| "the list does not decode")?;
    let max = server.config().status_list_max_ttl;
    let ttl = claims
        .ttl
        .map_or(max, |ttl| Duration::from_secs(ttl).min(max));
    let until_exp = claims
        .exp
        .map_or(ttl, |exp| Duration::from_secs((exp - now).max(0) as u64));
    Ok(Kept {
        list: Arc::new(list),
        fresh_until: Instant::now() + ttl.min(until_exp),
        usable_until: claims.exp,
    })
}
