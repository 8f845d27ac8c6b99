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
use writ_protocol::jose::MAX_STATUS_LIST_LEN;
use writ_protocol::status_list::{
    StatusList, StatusListClaims, StatusListReference, MEDIA_TYPE, TOKEN_TYPE, VALID,
};

use crate::rejection::Rejection;
use crate::verify::ResourceServer;

/// Lists kept at once; one process names one list at a time, so a
/// resource server meets few. Past it, the stalest is dropped.
const MAX_LISTS: usize = 64;

/// After a failed fetch, how long the copy in hand stands in before the
/// next attempt, so that an outage costs one attempt per list per this,
/// not one per request.
const RETRY_WITH_COPY: Duration = Duration::from_secs(10);
/// The same without a copy: requests are refused (503) meanwhile.
const RETRY_WITHOUT_COPY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct StatusLists {
    lists: Mutex<HashMap<String, Kept>>,
    /// One fetch at a time. Requests holding a usable copy never wait for
    /// it; the others wait for its answer instead of each asking Writ.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Kept {
    /// `None` after a failed first fetch.
    list: Option<Arc<StatusList>>,
    /// Fetch again after this (`ttl`, or the retry wait after a failure).
    fresh_until: Instant,
    /// Never rely on the copy after this: its `exp`, and at most
    /// [`Config::status_list_max_stale`](crate::Config::status_list_max_stale)
    /// past its `ttl`.
    usable_until: Instant,
    /// The copy's `iat`: a later fetch must not go back in time.
    issued_at: i64,
}

impl Kept {
    fn usable(&self, now: Instant) -> Option<Arc<StatusList>> {
        self.list.clone().filter(|_| self.usable_until > now)
    }
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
    let kept = lists.kept(uri);
    if let Some(kept) = kept.as_ref().filter(|kept| kept.fresh_until > now) {
        return kept.usable(now).ok_or_else(Rejection::unavailable);
    }
    let usable = kept.as_ref().and_then(|kept| kept.usable(now));
    let _one_fetch = match &usable {
        Some(list) => match lists.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => return Ok(list.clone()),
        },
        None => lists.fetching.lock().await,
    };
    let now = Instant::now();
    if let Some(fetched) = lists.kept(uri).filter(|kept| kept.fresh_until > now) {
        return fetched.usable(now).ok_or_else(Rejection::unavailable);
    }
    let issued_at = kept.as_ref().map_or(i64::MIN, |kept| kept.issued_at);
    match fetch(server, uri, issued_at).await {
        Ok(fetched) => {
            let list = fetched.list.clone();
            lists.keep(uri, fetched);
            list.ok_or_else(Rejection::unavailable)
        }
        Err(why) => {
            // §13.7: past its `ttl` a list should be fetched again, but it
            // may be relied on until its `exp` (here, at most
            // `status_list_max_stale` past the `ttl`): Writ being
            // unreachable for a moment does not refuse every token.
            tracing::warn!(
                uri,
                why,
                stale = usable.is_some(),
                "cannot refresh a status list"
            );
            let retry = if usable.is_some() {
                RETRY_WITH_COPY
            } else {
                RETRY_WITHOUT_COPY
            };
            lists.keep(
                uri,
                Kept {
                    list: usable.clone(),
                    fresh_until: now + retry,
                    usable_until: kept.as_ref().map_or(now, |kept| kept.usable_until),
                    issued_at,
                },
            );
            usable.ok_or_else(Rejection::unavailable)
        }
    }
}

/// Lists are fetched only from Writ: the origin of the issuer or of the
/// JWKS, over https, or http to a loopback host. A signed token names the
/// URI, but a server-side fetch goes nowhere else (R57).
fn allowed(server: &ResourceServer, uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return false;
    }
    let config = server.config();
    [&config.issuer, &config.jwks_url].iter().any(|trusted| {
        reqwest::Url::parse(trusted).is_ok_and(|trusted| trusted.origin() == url.origin())
    })
}

async fn fetch(server: &ResourceServer, uri: &str, kept_iat: i64) -> Result<Kept, &'static str> {
    if !allowed(server, uri) {
        return Err("the list's URI is not Writ's");
    }
    let mut response = server
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
    if !typed {
        return Err("the answer is not a status list token");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "the list cannot be read")?
    {
        if body.len() + chunk.len() > MAX_STATUS_LIST_LEN {
            return Err("the list is too large");
        }
        body.extend_from_slice(&chunk);
    }
    let token = std::str::from_utf8(&body).map_err(|_| "the list is not text")?;
    let verified = server
        .verify_signed_up_to(MAX_STATUS_LIST_LEN, token.trim())
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
    let config = server.config();
    let now = chrono::Utc::now().timestamp();
    let skew = config.skew.as_secs() as i64;
    let ttl = claims
        .ttl
        .map_or(config.status_list_max_ttl, Duration::from_secs)
        .min(config.status_list_max_ttl);
    if claims.exp.is_some_and(|exp| exp <= now) || claims.iat > now + skew {
        return Err("the list is expired or issued in the future");
    }
    // Writ signs a list again at least every `ttl`: an older one, or one
    // older than the copy in hand, is a replay.
    let signed_ttl = claims.ttl.unwrap_or(ttl.as_secs()) as i64;
    if now - claims.iat > signed_ttl + skew || claims.iat < kept_iat {
        return Err("the list is older than its ttl or than the copy in hand");
    }
    let list = StatusList::decode(&claims.status_list).map_err(|_| "the list does not decode")?;
    let fetched = Instant::now();
    let until_exp = claims.exp.map_or(Duration::MAX, |exp| {
        Duration::from_secs((exp - now).max(0) as u64)
    });
    Ok(Kept {
        list: Some(Arc::new(list)),
        fresh_until: fetched + ttl.min(until_exp),
        usable_until: fetched + (ttl + config.status_list_max_stale).min(until_exp),
        issued_at: claims.iat,
    })
}

#[cfg(all(test, feature = "axum"))]
mod tests;
