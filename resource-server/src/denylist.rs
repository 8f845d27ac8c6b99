//! The deny-list: what the revocation stream says, kept until the tokens
//! it affects have expired. Matching follows design.md: a token message
//! denies its `jti`; a grant message its `gid` and listed `jti`s; consent,
//! client and account messages deny the tokens of (`sub`, `client_id`),
//! `client_id` or `sub` issued up to `revoked_at` plus the clock-skew
//! allowance. Applying a message twice changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use writ_protocol::revocation::{Revocation, RevocationType};

/// What a verified access token says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub jti: String,
    pub gid: Option<String>,
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Consent,
    Client,
    Account,
}

/// An entry: revoked at, forgettable after.
#[derive(Debug, Clone, Copy)]
struct Entry {
    revoked_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Entry {
    /// Two messages for one key keep the later revocation and expiry.
    fn merge(&mut self, other: Entry) {
        self.revoked_at = self.revoked_at.max(other.revoked_at);
        self.expires_at = self.expires_at.max(other.expires_at);
    }
}

#[derive(Debug, Default)]
pub struct DenyList {
    skew: chrono::Duration,
    jtis: HashMap<String, Entry>,
    gids: HashMap<String, Entry>,
    principals: HashMap<(Scope, String, String), Entry>,
    last_cursor: Option<String>,
    last_applied_at: Option<DateTime<Utc>>,
    pruned_at: Option<DateTime<Utc>>,
}

impl DenyList {
    /// `skew` widens the subject and client rules: a token whose `iat` is up
    /// to `skew` after `revoked_at` may still have been issued before the
    /// revocation by a server whose clock ran ahead.
    pub fn new(skew: Duration) -> Self {
        Self {
            skew: chrono::Duration::from_std(skew).unwrap_or_default(),
            ..Self::default()
        }
    }

    pub fn apply(&mut self, message: &Revocation, now: DateTime<Utc>) {
        if self.last_cursor.as_deref() < Some(message.cursor.as_str()) {
            self.last_cursor = Some(message.cursor.clone());
        }
        self.last_applied_at = Some(now);
        // Every token it names has expired: it denies nothing, and kept it
        // would only wait for the next prune (a replayed feed is mostly
        // such messages).
        if message.expires_at + self.skew < now {
            return;
        }
        let entry = Entry {
            revoked_at: message.revoked_at,
            expires_at: message.expires_at,
        };
        let put = |map: &mut HashMap<String, Entry>, key: &str| {
            map.entry(key.to_owned())
                .and_modify(|known| known.merge(entry))
                .or_insert(entry);
        };
        match message.kind {
            RevocationType::TokenRevoked | RevocationType::GrantRevoked => {
                for jti in &message.jtis {
                    put(&mut self.jtis, jti);
                }
                if message.kind == RevocationType::GrantRevoked {
                    if let Some(gid) = &message.gid {
                        put(&mut self.gids, gid);
                    }
                }
            }
            RevocationType::ConsentWithdrawn => self.principal(
                Scope::Consent,
                message.sub.as_deref(),
                message.client_id.as_deref(),
                entry,
            ),
            RevocationType::ClientDisabled => {
                self.principal(Scope::Client, Some(""), message.client_id.as_deref(), entry)
            }
            RevocationType::AccountDisabled => {
                self.principal(Scope::Account, message.sub.as_deref(), Some(""), entry)
            }
        }
    }

    fn principal(&mut self, scope: Scope, sub: Option<&str>, client: Option<&str>, entry: Entry) {
        let (Some(sub), Some(client)) = (sub, client) else {
            return;
        };
        self.principals
            .entry((scope, sub.to_owned(), client.to_owned()))
            .and_modify(|known| known.merge(entry))
            .or_insert(entry);
    }

    /// Whether the stream has revoked this token.
    pub fn denies(&self, token: &TokenFacts) -> bool {
        if self.jtis.contains_key(&token.jti) {
            return true;
        }
        if token
            .gid
            .as_ref()
            .is_some_and(|gid| self.gids.contains_key(gid))
        {
            return true;
        }
        let issued_before = |entry: &Entry| token.issued_at <= entry.revoked_at + self.skew;
        let sub = token.sub.clone().unwrap_or_default();
        let client = token.client_id.clone().unwrap_or_default();
        [
            (Scope::Consent, sub.clone(), client.clone()),
            (Scope::Client, String::new(), client),
            (Scope::Account, sub, String::new()),
        ]
        .into_iter()
        .filter(|(_, sub, client)| !(sub.is_empty() && client.is_empty()))
        .any(|key| self.principals.get(&key).is_some_and(issued_before))
    }

    /// Forgets entries whose tokens have all expired.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let alive = |entry: &Entry| entry.expires_at + self.skew >= now;
        self.jtis.retain(|_, entry| alive(entry));
        self.gids.retain(|_, entry| alive(entry));
        self.principals.retain(|_, entry| alive(entry));
        self.pruned_at = Some(now);
    }

    pub fn pruned_at(&self) -> Option<DateTime<Utc>> {
        self.pruned_at
    }

    pub fn len(&self) -> usize {
        self.jtis.len() + self.gids.len() + self.principals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cursor of the newest message applied, and when it was applied.
    pub fn position(&self) -> (Option<&str>, Option<DateTime<Utc>>) {
        (self.last_cursor.as_deref(), self.last_applied_at)
    }
}

#[cfg(test)]
mod tests;
