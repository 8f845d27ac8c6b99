//! Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0
//! §2.5, §2.8): the outbox is the log. The policy schedules one
//! `BackchannelLogout` stream per (ended session, relying party); this
//! task follows the log for them, POSTs each relying party a freshly
//! signed logout token (the same `jti` every attempt), and records every
//! attempt's outcome. Failures are retried with doubling waits until the
//! stream's `give_up_at`, then recorded as abandoned; a relying party
//! that refuses the token itself (§2.8: a 4xx) is not asked again. Each
//! attempt goes to the client's back channel as registered then, and a
//! client disabled meanwhile is not called. Nothing here ever waits on
//! the person's logout, which answered long before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use writ_domain::backchannel_logout::{
    BackchannelLogout, BackchannelLogoutCommand, BackchannelLogoutEvent, Outcome,
};
use writ_domain::values::IdTokenAlg;
use writ_infra::outbound;
use writ_infra::signing::{jwt, KeySet};
use writ_store::metrics::Source;
use writ_store::views::clients;
use writ_store::{Cursor, Executor, Metadata, Store};

use crate::leadership::Leadership;

/// On PostgreSQL only the holder of this session lock delivers, so the
/// projector's high-availability pair does not send each token twice.
const DELIVERER_LOCK: i64 = 0x0057_5249_5442_434C; // "WRITBCL"

/// How often the log is read for new logouts and due retries are sent.
const TICK: Duration = Duration::from_millis(250);
const EVENTS_PER_READ: i64 = 1_000;
/// Deliveries in flight at once: a relying party that hangs holds one.
const IN_FLIGHT: usize = 32;
/// Deliveries in flight to one client: one that hangs cannot take the
/// slots every other relying party's logouts wait for.
const IN_FLIGHT_PER_CLIENT: usize = 2;
/// The first retry waits this long, each next one twice as long as the
/// one before, up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// §2.4: a logout token should be short-lived.
const TOKEN_LIFETIME_SECS: i64 = 120;
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, Default)]
pub struct BackchannelMetrics {
    pub delivered: Counter,
    pub rejected: Counter,
    pub failed_attempts: Counter,
    pub abandoned: Counter,
}

impl Source for BackchannelMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "writ_backchannel_logout_delivered",
            "logout tokens a relying party accepted",
            self.delivered.clone(),
        );
        registry.register(
            "writ_backchannel_logout_rejected",
            "logout tokens a relying party refused (a 4xx), or whose client lost its back channel",
            self.rejected.clone(),
        );
        registry.register(
            "writ_backchannel_logout_failed_attempts",
            "logout token deliveries that failed and will be retried or abandoned",
            self.failed_attempts.clone(),
        );
        registry.register(
            "writ_backchannel_logout_abandoned",
            "logout tokens given up on after their retry window",
            self.abandoned.clone(),
        );
    }
}

/// One relying party still to be told.
#[derive(Debug, Clone)]
struct Pending {
    client_id: String,
    sub: String,
    sid: String,
    attempts: u32,
    due: DateTime<Utc>,
}

/// How logout tokens are signed: as the server's id_tokens are.
pub struct Signing {
    pub keys: KeySet,
    pub issuer: String,
    /// The access tokens' algorithm, which replaces RS256 under FAPI 2.0.
    pub access_token_alg: String,
    /// Every client is held to FAPI 2.0.
    pub fapi2: bool,
}

pub struct Deliverer {
    store: Store,
    executor: Executor,
    signing: Signing,
    metrics: Arc<BackchannelMetrics>,
}

impl Deliverer {
    pub fn new(store: Store, executor: Executor, signing: Signing) -> Self {
        Self {
            store,
            executor,
            signing,
            metrics: Arc::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.executor.services().now()
    }

    pub fn metrics(&self) -> Arc<BackchannelMetrics> {
        self.metrics.clone()
    }

    pub async fn run_until_stopped(self, mut stopped: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut read_to = writ_store::START;
        let mut pending: HashMap<String, Pending> = HashMap::new();
        // The attempt each delivery under way makes. It stays here after
        // its outcome is recorded until the log, as read, shows it, so a
        // read lagging behind the commit never sends the same attempt twice.
        let mut in_flight: HashMap<String, u32> = HashMap::new();
        let (done, mut finished) = mpsc::unbounded_channel::<(String, Option<DateTime<Utc>>)>();
        let mut leadership = Leadership::new(DELIVERER_LOCK, "back-channel logouts");
        loop {
            // An attempt whose outcome could not be recorded waits before
            // it is made again, here, since the log cannot say so.
            while let Ok((id, not_recorded)) = finished.try_recv() {
                if let Some(not_before) = not_recorded {
                    in_flight.remove(&id);
                    if let Some(entry) = pending.get_mut(&id) {
                        entry.due = not_before;
                    }
                }
            }
            if *stopped.borrow() {
                return;
            }
            match this.read_new(read_to, &mut pending, &stopped).await {
                Ok(cursor) => read_to = cursor,
                Err(err) => {
                    tracing::warn!(error = %err, "back-channel logouts cannot read the log")
                }
            }
            in_flight.retain(|id, attempt| {
                pending
                    .get(id)
                    .is_some_and(|entry| entry.attempts < *attempt)
            });
            if !leadership.lead(&this.store).await {
                tokio::select! {
                    _ = stopped.wait_for(|stopped| *stopped) => return,
                    _ = tokio::time::sleep(TICK) => continue,
                }
            }
            let now = this.now();
            let mut due: Vec<(&String, &Pending)> = pending
                .iter()
                .filter(|(id, entry)| entry.due <= now && !in_flight.contains_key(*id))
                .collect();
            due.sort_by_key(|(_, entry)| entry.due);
            let mut per_client: HashMap<String, usize> = HashMap::new();
            for id in in_flight.keys() {
                if let Some(entry) = pending.get(id) {
                    *per_client.entry(entry.client_id.clone()).or_default() += 1;
                }
            }
            let mut chosen = Vec::new();
            for (id, entry) in due {
                if in_flight.len() + chosen.len() >= IN_FLIGHT {
                    break;
                }
                let busy = per_client.entry(entry.client_id.clone()).or_default();
                if *busy < IN_FLIGHT_PER_CLIENT {
                    *busy += 1;
                    chosen.push((id.clone(), entry.clone()));
                }
            }
            for (id, entry) in chosen {
                in_flight.insert(id.clone(), entry.attempts + 1);
                let (this, done) = (this.clone(), done.clone());
                tokio::spawn(async move {
                    let not_recorded = this.attempt(&id, entry).await;
                    let _ = done.send((id, not_recorded));
                });
            }
            tokio::select! {
                _ = stopped.wait_for(|stopped| *stopped) => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Folds the logouts committed since `after` into `pending`; a long
    /// read (the whole log, at start) stops early when asked to.
    async fn read_new(
        &self,
        mut after: Cursor,
        pending: &mut HashMap<String, Pending>,
        stopped: &watch::Receiver<bool>,
    ) -> Result<Cursor, sqlx::Error> {
        loop {
            if *stopped.borrow() {
                return Ok(after);
            }
            let (events, reached) = self
                .store
                .events_of_type_after(after, BackchannelLogout::TYPE, EVENTS_PER_READ)
                .await?;
            for event in &events {
                if let Ok(payload) = serde_json::from_value(event.payload.clone()) {
                    fold(pending, &event.aggregate_id, payload);
                }
            }
            let more = reached != after && events.len() as i64 == EVENTS_PER_READ;
            after = reached;
            if !more {
                return Ok(after);
            }
        }
    }

    /// One delivery attempt and its recorded outcome; when the outcome
    /// could not be recorded (or nothing could be sent, the client's
    /// settings being unreadable), the time before which not to try again.
    async fn attempt(&self, id: &str, entry: Pending) -> Option<DateTime<Utc>> {
        let attempt = entry.attempts + 1;
        let later = || Some(self.now() + backoff(attempt));
        let Ok(settings) = clients::active_settings(self.store.db(), &entry.client_id).await else {
            return later();
        };
        let target = settings.and_then(|settings| {
            let alg = settings.id_token_alg(self.signing.fapi2, &self.signing.access_token_alg);
            Some((settings.backchannel_logout_uri?, alg))
        });
        let outcome = match target {
            None => Outcome::Rejected {
                reason: "the client is disabled or has no backchannel_logout_uri".into(),
            },
            Some((uri, alg)) => match self.token(id, &entry, alg) {
                None => self.failed(attempt, "no signing key for the logout token".into()),
                Some(token) => match outbound::post_form(&uri, &[("logout_token", &token)]).await {
                    // §2.8: 200, or 204 from a relying party with nothing to say.
                    Ok(status @ (200 | 204)) => Outcome::Delivered { status },
                    Ok(status @ 400..=499) if status != 408 && status != 429 => Outcome::Rejected {
                        reason: format!("HTTP {status}"),
                    },
                    Ok(status) => self.failed(attempt, format!("HTTP {status}")),
                    Err(why) => self.failed(attempt, why),
                },
            },
        };
        let metrics = &self.metrics;
        match &outcome {
            Outcome::Delivered { .. } => metrics.delivered.inc(),
            Outcome::Rejected { .. } => metrics.rejected.inc(),
            Outcome::Failed { .. } => metrics.failed_attempts.inc(),
        };
        let command = BackchannelLogoutCommand::Record { attempt, outcome };
        let metadata = Metadata {
            actor: "backchannel".into(),
            request_id: format!("backchannel:{id}:{attempt}"),
            client_id: Some(entry.client_id.clone()),
            client_auth: None,
        };
        match self
            .executor
            .execute::<BackchannelLogout>(id, command, &metadata)
            .await
        {
            Ok(committed) => {
                if committed.events.iter().any(|e| {
                    matches!(
                        e.payload,
                        BackchannelLogoutEvent::BackchannelLogoutAbandoned { .. }
                    )
                }) {
                    metrics.abandoned.inc();
                    tracing::warn!(client_id = %entry.client_id, "a back-channel logout was abandoned after its retry window");
                }
                None
            }
            Err(err) => {
                tracing::warn!(error = %err, "a back-channel logout attempt was not recorded");
                later()
            }
        }
    }

    fn failed(&self, attempt: u32, reason: String) -> Outcome {
        Outcome::Failed {
            reason,
            retry_at: self.now() + backoff(attempt),
        }
    }

    /// §2.4: `typ logout+jwt`, signed with the client's id_token algorithm
    /// (§2.6: validated as an id_token is), with both `sub` and `sid`, the
    /// back-channel event, and no `nonce`; the stream id is the `jti`, the
    /// same on every try.
    fn token(&self, id: &str, entry: &Pending, alg: IdTokenAlg) -> Option<String> {
        let signer = self.signing.keys.signer(alg.as_str())?;
        let now = self.now().timestamp();
        let claims = json!({
            "iss": self.signing.issuer,
            "aud": entry.client_id,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "jti": id,
            "sub": entry.sub,
            "sid": entry.sid,
            "events": { EVENT: {} },
        });
        jwt::encode(&signer, "logout+jwt", &claims).ok()
    }
}

/// What one logout event says of where its relying party stands.
fn fold(pending: &mut HashMap<String, Pending>, id: &str, event: BackchannelLogoutEvent) {
    match event {
        BackchannelLogoutEvent::BackchannelLogoutScheduled {
            client_id,
            sub,
            sid,
            scheduled_at,
            ..
        } => {
            pending.insert(
                id.to_owned(),
                Pending {
                    client_id,
                    sub,
                    sid,
                    attempts: 0,
                    due: scheduled_at,
                },
            );
        }
        BackchannelLogoutEvent::BackchannelLogoutAttemptFailed {
            attempt, retry_at, ..
        } => {
            if let Some(entry) = pending.get_mut(id) {
                entry.attempts = attempt;
                entry.due = retry_at;
            }
        }
        BackchannelLogoutEvent::BackchannelLogoutDelivered { .. }
        | BackchannelLogoutEvent::BackchannelLogoutRejected { .. }
        | BackchannelLogoutEvent::BackchannelLogoutAbandoned { .. } => {
            pending.remove(id);
        }
    }
}

/// The wait after the `attempt`th failure: 1 s, doubling, at most an hour.
fn backoff(attempt: u32) -> chrono::Duration {
    doubling(attempt, FIRST_WAIT, LONGEST_WAIT)
}

/// `first` after the first failure, twice as long after each next one, at
/// most `longest`: the waits of every outbox Writ delivers from.
pub(crate) fn doubling(attempt: u32, first: Duration, longest: Duration) -> chrono::Duration {
    let wait = first
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
        .min(longest);
    chrono::Duration::from_std(wait).unwrap_or_default()
}
