//! Shared Signals (OpenID SSF 1.0, CAEP, RISC) against the real binary:
//! every kind of signal reaches a poller as an RS256
//! SET that an independent JOSE library verifies; acknowledgements,
//! redelivery after a restart, long polling, a stream replayed from the
//! start of the log. Stream management: `shared_signals_streams`; push
//! delivery: `shared_signals_push`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{eventually, Backend, Deployment, Server};
use crate::oauth::{self, Api, Creds, Reply};
use crate::refresh::{password_app, user, PASSWORD};

writ_testing::on_both_backends!(
    a_poller_gets_every_signal_as_a_verifiable_set_until_it_acknowledges,
    a_stream_may_start_at_the_beginning_of_the_log,
);

pub(crate) const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub(crate) const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const ACCOUNT_ENABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
pub(crate) const VERIFICATION: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";
pub(crate) const PUSH: &str = "urn:ietf:rfc:8935";

pub(crate) fn receiver_client(deployment: &Deployment) -> Creds {
    oauth::client(
        deployment,
        &[
            "--grant-type",
            "client_credentials",
            "--scope",
            "ssf.manage",
        ],
    )
}

pub(crate) struct Ssf {
    pub(crate) api: Api,
    pub(crate) token: String,
}

impl Ssf {
    pub(crate) async fn new(server: &Server, receiver: &Creds) -> Self {
        let api = Api::new(server);
        let token = api.client_credentials(receiver).await;
        Self { api, token }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .api
            .http
            .request(method, self.api.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Api::reply(request).await
    }

    pub(crate) async fn create(&self, body: Value) -> String {
        let reply = self
            .call(reqwest::Method::POST, "/ssf/streams", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.field("stream_id")
    }

    pub(crate) async fn poll(&self, stream_id: &str, body: Value) -> Value {
        let reply = self
            .call(
                reqwest::Method::POST,
                &format!("/ssf/poll/{stream_id}"),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Polls, acknowledging nothing, until the stream has `count` SETs.
    pub(crate) async fn sets(&self, stream_id: &str, count: usize) -> Vec<(String, String)> {
        eventually(&format!("{count} SETs"), || async {
            let body = self
                .poll(stream_id, json!({"returnImmediately": true}))
                .await;
            let sets: Vec<(String, String)> = body["sets"]
                .as_object()?
                .iter()
                .map(|(jti, set)| (jti.clone(), set.as_str().unwrap_or_default().to_owned()))
                .collect();
            (sets.len() >= count).then_some(sets)
        })
        .await
    }

    pub(crate) async fn jwks(&self) -> JwkSet {
        self.api.json("/jwks").await
    }
}

/// A SET's claims, verified by `jsonwebtoken` against the JWKS: RS256,
/// `typ secevent+jwt`, the issuer and the receiver as audience; no `sub`
/// and no `exp` (SSF §4.1).
pub(crate) fn verified(set: &str, keys: &JwkSet, audience: &str, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(set).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let kid = header.kid.unwrap_or_else(|| panic!("no kid"));
    let jwk = keys
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk).unwrap_or_else(|e| panic!("{e}"));
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    let claims = jsonwebtoken::decode::<Value>(set, &key, &validation)
        .unwrap_or_else(|e| panic!("the SET does not verify: {e}"))
        .claims;
    assert!(
        claims.get("sub").is_none() && claims.get("exp").is_none(),
        "{claims}"
    );
    assert!(
        claims["iat"].is_i64() && claims["jti"].is_string(),
        "{claims}"
    );
    claims
}

pub(crate) fn event_type(claims: &Value) -> String {
    claims["events"]
        .as_object()
        .and_then(|events| events.keys().next().cloned())
        .unwrap_or_default()
}

pub(crate) async fn count(deployment: &Deployment, event_type: &str) -> i64 {
    deployment
        .count(&format!(
            "SELECT count(*) FROM events WHERE event_type = '{event_type}'"
        ))
        .await
}

async fn a_poller_gets_every_signal_as_a_verifiable_set_until_it_acknowledges(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    let app = password_app(&deployment, &[]);
    user(&deployment, "alice");
    // One issuer across the restart, as a deployment has; the port changes.
    const ISSUER: &str = "https://writ.example";
    let server = deployment.serve_with(&["--issuer", ISSUER]);
    let ssf = Ssf::new(&server, &receiver).await;
    let issuer = ISSUER;
    let stream_id = ssf.create(json!({})).await;

    // A refresh token revoked by its client (RFC 7009).
    let reply = ssf.api.password(&app, "alice", PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let access = reply.field("access_token");
    let gid = unverified(&access)["gid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        ssf.api
            .revoke(&app, &reply.field("refresh_token"))
            .await
            .status,
        200
    );
    // A password set, the account disabled (its other grant revoked with
    // it), enabled again, and forgotten, all from the CLI while serving.
    let second = ssf.api.password(&app, "alice", PASSWORD).await;
    assert_eq!(second.status, 200, "{}", second.body);
    deployment
        .writ_with_stdin(
            &["user", "set-password", "alice", "--password-stdin"],
            "another password\n",
        )
        .success();
    // The policy revokes the second grant after the change commits; the
    // order below is the log's only once it has.
    eventually("the password change's revocation", || async {
        (count(&deployment, "GrantRevoked").await == 2).then_some(())
    })
    .await;
    deployment.writ(&["user", "disable", "alice"]).success();
    deployment.writ(&["user", "enable", "alice"]).success();
    deployment.writ(&["user", "forget", "alice"]).success();
    let verify = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(json!({"stream_id": stream_id, "state": "s-123"})),
        )
        .await;
    assert_eq!(verify.status, StatusCode::NO_CONTENT);

    let keys = ssf.jwks().await;
    let sets = ssf.sets(&stream_id, 7).await;
    let mut claims: Vec<Value> = sets
        .iter()
        .map(|(jti, set)| {
            let claims = verified(set, &keys, &receiver.id, issuer);
            assert_eq!(claims["jti"], *jti);
            claims
        })
        .collect();
    claims.sort_by_key(|c| c["jti"].as_str().unwrap_or_default().to_owned());
    let types: Vec<String> = claims.iter().map(event_type).collect();
    assert_eq!(
        types,
        [
            SESSION_REVOKED,
            CREDENTIAL_CHANGE,
            SESSION_REVOKED,
            ACCOUNT_DISABLED,
            ACCOUNT_ENABLED,
            ACCOUNT_PURGED,
            VERIFICATION
        ],
        "in log order"
    );
    let revoked = &claims[0];
    assert_eq!(revoked["sub_id"]["format"], "complex");
    assert_eq!(
        revoked["sub_id"]["session"],
        json!({"format": "opaque", "id": gid})
    );
    let sub = revoked["sub_id"]["user"]["sub"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(revoked["sub_id"]["user"]["format"], "iss_sub");
    assert!(!sub.is_empty());
    let body = &revoked["events"][SESSION_REVOKED];
    assert!(body["reason_admin"]["en"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(body["initiating_entity"], "user");
    let changed = &claims[1]["events"][CREDENTIAL_CHANGE];
    assert_eq!(changed["credential_type"], "password");
    assert_eq!(changed["change_type"], "update");
    assert_eq!(
        claims[1]["sub_id"],
        json!({"format": "iss_sub", "iss": claims[1]["iss"], "sub": sub})
    );
    assert_eq!(
        claims[2]["events"][SESSION_REVOKED]["initiating_entity"], "policy",
        "the password change revoked the second grant"
    );
    assert_eq!(claims[6]["events"][VERIFICATION]["state"], "s-123");
    assert_eq!(
        claims[6]["sub_id"],
        json!({"format": "opaque", "id": stream_id})
    );

    // Acknowledge two; the rest come back identical, also after a restart.
    let jtis: Vec<String> = claims
        .iter()
        .map(|c| c["jti"].as_str().unwrap_or_default().to_owned())
        .collect();
    let acked = ssf
        .poll(
            &stream_id,
            json!({"ack": [jtis[0], jtis[3]], "returnImmediately": true, "maxEvents": 2}),
        )
        .await;
    assert_eq!(acked["sets"].as_object().map(|s| s.len()), Some(2));
    assert_eq!(acked["moreAvailable"], true);
    assert!(acked["sets"].get(&jtis[1]).is_some() && acked["sets"].get(&jtis[2]).is_some());
    assert_eq!(count(&deployment, "SsfSetsAcknowledged").await, 1);
    // Proof of notification, from the log: the revocation was handed over
    // and acknowledged; the password change only handed over.
    let told = deployment
        .writ(&["--json", "audit", "notifications", "--grant", &gid])
        .success()
        .json();
    let told = told.as_array().cloned().unwrap_or_default();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["stream_id"], stream_id);
    assert_eq!(told[0]["receiver"], receiver.id);
    assert_eq!(told[0]["jti"], jtis[0]);
    assert_eq!(told[0]["outcome"], "acknowledged");
    assert!(told[0]["told_at"].is_string() && told[0]["acknowledged_at"].is_string());
    let position = jtis[1].split('.').next().unwrap_or_default().to_owned();
    let pending = deployment
        .writ(&["--json", "audit", "notifications", "--position", &position])
        .success()
        .json();
    assert_eq!(pending[0]["outcome"], "not yet acknowledged", "{pending}");
    assert_eq!(pending[0]["event"], CREDENTIAL_CHANGE);
    let learned = deployment
        .writ(&[
            "--json",
            "audit",
            "notifications",
            "--receiver",
            &receiver.id,
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ])
        .success()
        .json();
    let learned: Vec<String> = learned
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["jti"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(learned.len(), 7, "every SET handed over once: {learned:?}");
    let refused = deployment.writ(&["audit", "notifications"]).refused();
    assert!(!refused.is_empty());
    // Five SETs wait for their acknowledgement, and `/metrics` says so.
    let lag = format!("writ_ssf_lag_events{{stream_id=\"{stream_id}\"}} 5");
    eventually("the poll stream's lag in /metrics", || async {
        let metrics = ssf.api.text("/metrics").await.unwrap_or_default();
        metrics.contains(&lag).then_some(())
    })
    .await;
    drop(server);
    let server = deployment.serve_with(&["--issuer", ISSUER]);
    let ssf = Ssf::new(&server, &receiver).await;
    let again = ssf.sets(&stream_id, 5).await;
    let before: std::collections::HashMap<_, _> = sets.into_iter().collect();
    assert_eq!(again.len(), 5);
    for (jti, set) in &again {
        assert_eq!(
            before.get(jti).map(|s| unverified(s)),
            Some(unverified(set)),
            "a redelivered SET has the same claims"
        );
        assert_eq!(
            before.get(jti),
            Some(set),
            "a redelivered SET is the same SET"
        );
        assert!(jti != &jtis[0] && jti != &jtis[3]);
    }
    // An error report acknowledges too; then a held poll answers as soon
    // as a new signal commits.
    let rest: Vec<&String> = again.iter().map(|(jti, _)| jti).collect();
    let set_errs: serde_json::Map<String, Value> = rest
        .iter()
        .map(|jti| {
            (
                (*jti).clone(),
                json!({"err": "invalid_key", "description": "test"}),
            )
        })
        .collect();
    let emptied = ssf
        .poll(
            &stream_id,
            json!({"setErrs": set_errs, "returnImmediately": true}),
        )
        .await;
    assert_eq!(emptied["sets"], json!({}));
    let held = {
        let ssf = &ssf;
        let stream_id = stream_id.clone();
        async move { ssf.poll(&stream_id, json!({"maxEvents": 5})).await }
    };
    let trigger = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        ssf.call(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(json!({"stream_id": stream_id, "state": "later"})),
        )
        .await
    };
    let (held, _) = tokio::join!(held, trigger);
    let late = held["sets"].as_object().cloned().unwrap_or_default();
    assert_eq!(late.len(), 1, "{held}");
    assert!(count(&deployment, "SsfSetsDelivered").await >= 1);
}

pub(crate) fn claims_sub(set: &str) -> Value {
    unverified(set)["sub_id"].clone()
}

/// A JWT's claims, read without checking anything: only to learn what to
/// compare with.
pub(crate) fn unverified(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

async fn a_stream_may_start_at_the_beginning_of_the_log(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let receiver = receiver_client(&deployment);
    user(&deployment, "alice");
    deployment.writ(&["user", "disable", "alice"]).success();
    let server = deployment.serve();
    let ssf = Ssf::new(&server, &receiver).await;
    let now = ssf.create(json!({})).await;
    let replayed = ssf
        .create(json!({"start_after": "00000000000000000000"}))
        .await;
    let since = ssf
        .create(json!({"start_at": "2000-01-01T00:00:00Z"}))
        .await;
    let keys = ssf.jwks().await;
    for stream in [&replayed, &since] {
        let sets = ssf.sets(stream, 1).await;
        let claims = verified(&sets[0].1, &keys, &receiver.id, &server.url(""));
        assert_eq!(event_type(&claims), ACCOUNT_DISABLED);
    }
    let fresh = ssf.poll(&now, json!({"returnImmediately": true})).await;
    assert_eq!(
        fresh["sets"],
        json!({}),
        "a new stream starts at its creation"
    );
    let bad = ssf
        .call(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(json!({"start_after": "yesterday"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
