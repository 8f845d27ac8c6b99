//! What the soak's traffic does: short user stories over raw HTTP, each
//! checking what it reads. Writes go to the command API; reads to the
//! query APIs in turn, as a load balancer would send them, and each write
//! is read back there at once (read-your-writes, no cursor presented).
//! Tokens are taken from a pool by one flow at a time, so no flow sees a
//! token die under it that another flow revoked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::http::{claim, query_param, Http, Jar, Outcome, Reply};
use super::lock;
use super::setup::{person, withdrawer, Clients, PASSWORD, PEOPLE, REDIRECT_URI, WITHDRAWERS};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const SCOPES: &str = "openid offline_access read";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const POOL: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    ClientCredentials,
    Introspection,
    Revocation,
    CodeFlow,
    Refresh,
    GrantRevocation,
    ConsentWithdrawal,
    DeviceFlow,
    TokenExchange,
}

/// The mix, as weights out of 20.
pub const MIX: &[(Flow, usize)] = &[
    (Flow::ClientCredentials, 5),
    (Flow::Introspection, 5),
    (Flow::Revocation, 2),
    (Flow::CodeFlow, 2),
    (Flow::Refresh, 2),
    (Flow::GrantRevocation, 1),
    (Flow::ConsentWithdrawal, 1),
    (Flow::DeviceFlow, 1),
    (Flow::TokenExchange, 1),
];

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Introspection => "introspection",
            Self::Revocation => "revocation",
            Self::CodeFlow => "code_flow",
            Self::Refresh => "refresh",
            Self::GrantRevocation => "grant_revocation",
            Self::ConsentWithdrawal => "consent_withdrawal",
            Self::DeviceFlow => "device_flow",
            Self::TokenExchange => "token_exchange",
        }
    }

    /// The `n`th flow of the repeating mix.
    pub fn nth(n: usize) -> Self {
        let total: usize = MIX.iter().map(|(_, weight)| weight).sum();
        let mut slot = n % total;
        for (flow, weight) in MIX {
            if slot < *weight {
                return *flow;
            }
            slot -= weight;
        }
        Flow::Introspection
    }
}

/// A person's signed-in app: its newest access and refresh token.
struct Session {
    access: String,
    refresh: String,
}

pub struct Traffic {
    pub http: Http,
    command: String,
    queries: [String; 2],
    clients: Clients,
    next_query: AtomicUsize,
    steady: Vec<String>,
    service_tokens: Mutex<VecDeque<String>>,
    sessions: Mutex<VecDeque<Session>>,
    people: Mutex<VecDeque<String>>,
    withdrawers: Mutex<VecDeque<String>>,
}

/// Keeps at most `POOL`, dropping the oldest (whose tokens simply live on).
fn keep<T>(pool: &Mutex<VecDeque<T>>, item: T) {
    let mut pool = lock(pool);
    if pool.len() >= POOL {
        pool.pop_front();
    }
    pool.push_back(item);
}

impl Traffic {
    pub fn new(http: Http, command: String, queries: [String; 2], clients: Clients) -> Self {
        Self {
            http,
            command,
            queries,
            clients,
            next_query: AtomicUsize::new(0),
            steady: Vec::new(),
            service_tokens: Mutex::new(VecDeque::new()),
            sessions: Mutex::new(VecDeque::new()),
            people: Mutex::new((0..PEOPLE).map(person).collect()),
            withdrawers: Mutex::new((0..WITHDRAWERS).map(withdrawer).collect()),
        }
    }

    /// Issues the long-lived tokens the introspection flow reads.
    pub async fn prepare(&mut self, count: usize) -> Outcome<()> {
        for _ in 0..count {
            let token = self.client_credentials_token().await?;
            self.steady.push(token);
        }
        Ok(())
    }

    pub async fn run(&self, flow: Flow, n: usize) -> Outcome<()> {
        match flow {
            Flow::ClientCredentials => self.client_credentials(n).await,
            Flow::Introspection => self.introspection(n).await,
            Flow::Revocation => self.revocation().await,
            Flow::CodeFlow => self.code_flow().await,
            Flow::Refresh => self.refresh().await,
            Flow::GrantRevocation => self.grant_revocation().await,
            Flow::ConsentWithdrawal => self.consent_withdrawal().await,
            Flow::DeviceFlow => self.device_flow(n).await,
            Flow::TokenExchange => self.token_exchange().await,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.command)
    }

    fn query_url(&self, path: &str) -> String {
        let index = self.next_query.fetch_add(1, Ordering::Relaxed) % self.queries.len();
        format!("{}{path}", self.queries[index])
    }

    fn acknowledge_issued(&self, reply: &Reply) -> Outcome<String> {
        let access = reply.field("access_token")?;
        let jti = claim(&access, "jti")?;
        self.http
            .recorder
            .acknowledge(|acknowledged| acknowledged.issued.push(jti));
        Ok(access)
    }

    /// Whether a query API finds `token` active, asked by the resource
    /// server that every token names in its audience.
    async fn active(&self, token: &str) -> Outcome<bool> {
        let reply = self
            .http
            .post_form(
                &self.query_url("/introspect"),
                Some(&self.clients.resource.basic()),
                &[("token", token)],
            )
            .await?
            .expect(200, "introspection")?;
        reply.json()["active"]
            .as_bool()
            .ok_or_else(|| format!("introspection: {}", reply.short()))
    }

    async fn must_be(&self, token: &str, active: bool, what: &str) -> Outcome<()> {
        if self.active(token).await? == active {
            Ok(())
        } else {
            Err(format!("{what}: a query API says active = {}", !active))
        }
    }

    async fn client_credentials_token(&self) -> Outcome<String> {
        let reply = self
            .http
            .post_form(
                &self.url("/token"),
                Some(&self.clients.service.basic()),
                &[("grant_type", "client_credentials"), ("scope", "read")],
            )
            .await?
            .expect(200, "client_credentials")?;
        self.acknowledge_issued(&reply)
    }

    async fn client_credentials(&self, n: usize) -> Outcome<()> {
        let token = self.client_credentials_token().await?;
        self.must_be(&token, true, "issued").await?;
        // Half are kept for the revocation flow, so the pool outgrows it.
        if n % 2 == 0 {
            keep(&self.service_tokens, token);
        }
        Ok(())
    }

    async fn introspection(&self, n: usize) -> Outcome<()> {
        let token = self
            .steady
            .get(n % self.steady.len().max(1))
            .ok_or("no steady tokens")?;
        self.must_be(token, true, "a live token").await
    }

    async fn revocation(&self) -> Outcome<()> {
        let taken = lock(&self.service_tokens).pop_front();
        let token = match taken {
            Some(token) => token,
            None => self.client_credentials_token().await?,
        };
        self.http
            .post_form(
                &self.url("/revoke"),
                Some(&self.clients.service.basic()),
                &[("token", &token), ("token_type_hint", "access_token")],
            )
            .await?
            .expect(200, "revoke")?;
        let jti = claim(&token, "jti")?;
        self.http
            .recorder
            .acknowledge(|acknowledged| acknowledged.revoked_tokens.push(jti));
        self.must_be(&token, false, "revoked").await
    }

    /// Signs `username` in to the app through the pages and redeems the
    /// code; the jar keeps the browser's session.
    async fn sign_in(&self, jar: &mut Jar, username: &str) -> Outcome<Session> {
        let state = format!("s{}", self.next_query.load(Ordering::Relaxed));
        let query = super::http::form(&[
            ("client_id", &self.clients.app.id),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", SCOPES),
            ("state", &state),
            ("nonce", "n"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        let mut page = self
            .http
            .browse(jar, &self.url(&format!("/authorize?{query}")), None)
            .await?;
        if page.has_form("/login") {
            let csrf = page.hidden("csrf")?;
            let request = page.hidden("request")?;
            let signed_in = self
                .http
                .browse(
                    jar,
                    &self.url("/login"),
                    Some(&[
                        ("csrf", &csrf),
                        ("request", &request),
                        ("username", username),
                        ("password", PASSWORD),
                    ]),
                )
                .await?
                .expect(303, "sign-in")?;
            let next = signed_in.header("location").unwrap_or_default().to_owned();
            page = self.http.browse(jar, &self.url(&next), None).await?;
        }
        if page.has_form("/consent") {
            let csrf = page.hidden("csrf")?;
            let request = page.hidden("request")?;
            page = self
                .http
                .browse(
                    jar,
                    &self.url("/consent"),
                    Some(&[
                        ("csrf", &csrf),
                        ("request", &request),
                        ("decision", "allow"),
                    ]),
                )
                .await?;
        }
        let page = page.expect(303, "back to the app")?;
        let location = page.header("location").unwrap_or_default();
        if !location.starts_with(REDIRECT_URI) || query_param(location, "state") != Some(state) {
            return Err(format!("redirected to {location}"));
        }
        let code = query_param(location, "code").ok_or("no code")?;
        let reply = self
            .http
            .post_form(
                &self.url("/token"),
                Some(&self.clients.app.basic()),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await?
            .expect(200, "code exchange")?;
        let access = self.acknowledge_issued(&reply)?;
        let refresh = reply.field("refresh_token")?;
        self.must_be(&access, true, "signed in").await?;
        Ok(Session { access, refresh })
    }

    /// A person no other flow is using, waited for: during a fault flows
    /// hold people for as long as Writ takes to answer them.
    async fn take(pool: &Mutex<VecDeque<String>>) -> Outcome<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(username) = lock(pool).pop_front() {
                return Ok(username);
            }
            if tokio::time::Instant::now() > deadline {
                return Err("starved: every person was in another flow for a minute".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn code_flow(&self) -> Outcome<()> {
        let username = Self::take(&self.people).await?;
        let signed_in = self.sign_in(&mut Jar::default(), &username).await;
        keep(&self.people, username);
        keep(&self.sessions, signed_in?);
        Ok(())
    }

    async fn session(&self) -> Outcome<Session> {
        let taken = lock(&self.sessions).pop_front();
        match taken {
            Some(session) => Ok(session),
            None => {
                let username = Self::take(&self.people).await?;
                let signed_in = self.sign_in(&mut Jar::default(), &username).await;
                keep(&self.people, username);
                signed_in
            }
        }
    }

    /// The session signed in last, whose access token is the furthest from
    /// its expiry; a new one when none is free.
    async fn newest_session(&self) -> Outcome<Session> {
        let taken = lock(&self.sessions).pop_back();
        match taken {
            Some(session) => Ok(session),
            None => self.session().await,
        }
    }

    /// The app's refresh request with `refresh_token`.
    async fn redeem_refresh(&self, refresh_token: &str) -> Outcome<Reply> {
        self.http
            .post_form(
                &self.url("/token"),
                Some(&self.clients.app.basic()),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await
    }

    async fn refresh(&self) -> Outcome<()> {
        let session = self.session().await?;
        let reply = self
            .redeem_refresh(&session.refresh)
            .await?
            .expect(200, "refresh")?;
        let access = self.acknowledge_issued(&reply)?;
        let refresh = reply.field("refresh_token")?;
        if refresh == session.refresh {
            return Err("the refresh token did not rotate".into());
        }
        keep(&self.sessions, Session { access, refresh });
        Ok(())
    }

    async fn grant_revocation(&self) -> Outcome<()> {
        // Its access token has not expired, so it can only be inactive
        // because the revocation took.
        let session = self.newest_session().await?;
        self.http
            .post_form(
                &self.url("/revoke"),
                Some(&self.clients.app.basic()),
                &[
                    ("token", &session.refresh),
                    ("token_type_hint", "refresh_token"),
                ],
            )
            .await?
            .expect(200, "revoke a refresh token")?;
        let gid = claim(&session.access, "gid")?;
        self.http
            .recorder
            .acknowledge(|acknowledged| acknowledged.revoked_grants.push(gid));
        self.must_be(&session.access, false, "its grant revoked")
            .await?;
        let refused = self.redeem_refresh(&session.refresh).await?;
        match refused.json()["error"].as_str() {
            Some("invalid_grant") => Ok(()),
            _ => Err(format!(
                "a revoked refresh token: {} {}",
                refused.status,
                refused.short()
            )),
        }
    }

    async fn consent_withdrawal(&self) -> Outcome<()> {
        let username = Self::take(&self.withdrawers).await?;
        let withdrawn = self.withdraw(&username).await;
        keep(&self.withdrawers, username);
        withdrawn
    }

    async fn withdraw(&self, username: &str) -> Outcome<()> {
        let mut jar = Jar::default();
        let session = self.sign_in(&mut jar, username).await?;
        let account = self
            .http
            .browse(&mut jar, &self.url("/account"), None)
            .await?
            .expect(200, "account page")?;
        let csrf = account.hidden("csrf")?;
        self.http
            .browse(
                &mut jar,
                &self.url("/account/consents"),
                Some(&[("csrf", &csrf), ("client_id", &self.clients.app.id)]),
            )
            .await?
            .expect(303, "withdraw consent")?;
        let sub = claim(&session.access, "sub")?;
        self.http
            .recorder
            .acknowledge(|acknowledged| *acknowledged.withdrawn.entry(sub).or_default() += 1);
        self.must_be(&session.access, false, "consent withdrawn")
            .await
    }

    async fn device_flow(&self, n: usize) -> Outcome<()> {
        let username = Self::take(&self.people).await?;
        let result = self.device(&username, n).await;
        keep(&self.people, username);
        result
    }

    /// Device `n` at its own address: a public client's device requests
    /// are limited per address, and real devices are many.
    async fn device(&self, username: &str, n: usize) -> Outcome<()> {
        let device = &self.clients.device.id;
        let address = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let started = self
            .http
            .post_form_from(
                &self.url("/device_authorization"),
                None,
                &[("client_id", device), ("scope", SCOPES)],
                Some(&address),
            )
            .await?
            .expect(200, "device authorization")?;
        let (device_code, user_code) = (started.field("device_code")?, started.field("user_code")?);
        let mut jar = Jar::default();
        let entry = self
            .http
            .browse(&mut jar, &self.url("/device"), None)
            .await?
            .expect(200, "device page")?;
        let login = self
            .http
            .browse(
                &mut jar,
                &self.url("/device"),
                Some(&[("csrf", &entry.hidden("csrf")?), ("user_code", &user_code)]),
            )
            .await?;
        let confirm = self
            .http
            .browse(
                &mut jar,
                &self.url("/login"),
                Some(&[
                    ("csrf", &login.hidden("csrf")?),
                    ("device", &login.hidden("device")?),
                    ("username", username),
                    ("password", PASSWORD),
                ]),
            )
            .await?;
        if !confirm.has_form("/device/decision") {
            return Err(format!(
                "device sign-in: {} {}",
                confirm.status,
                confirm.short()
            ));
        }
        self.http
            .browse(
                &mut jar,
                &self.url("/device/decision"),
                Some(&[
                    ("csrf", &confirm.hidden("csrf")?),
                    ("request", &confirm.hidden("request")?),
                    ("decision", "allow"),
                ]),
            )
            .await?
            .expect(200, "device decision")?;
        // The device polls at the interval it was given; the first poll
        // after the person allowed it may still be early.
        let interval = started.json()["interval"].as_u64().unwrap_or(5);
        for _ in 0..3 {
            let polled = self
                .http
                .post_form_from(
                    &self.url("/token"),
                    None,
                    &[
                        ("grant_type", DEVICE_GRANT),
                        ("client_id", device),
                        ("device_code", &device_code),
                    ],
                    Some(&address),
                )
                .await?;
            if polled.status == 200 {
                let access = self.acknowledge_issued(&polled)?;
                return self.must_be(&access, true, "device token").await;
            }
            if !matches!(
                polled.json()["error"].as_str(),
                Some("authorization_pending" | "slow_down")
            ) {
                return Err(format!("device poll: {} {}", polled.status, polled.short()));
            }
            tokio::time::sleep(Duration::from_secs(interval)).await;
        }
        Err("the device never got its tokens".into())
    }

    async fn token_exchange(&self) -> Outcome<()> {
        let session = self.newest_session().await?;
        let exchanged = self
            .http
            .post_form(
                &self.url("/token"),
                Some(&self.clients.resource.basic()),
                &[
                    ("grant_type", EXCHANGE_GRANT),
                    ("subject_token", &session.access),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("audience", &self.clients.downstream.id),
                    ("scope", "read"),
                ],
            )
            .await;
        keep(&self.sessions, session);
        let reply = exchanged?.expect(200, "token exchange")?;
        let access = self.acknowledge_issued(&reply)?;
        if claim(&access, "aud").ok().as_deref() != Some(self.clients.downstream.id.as_str()) {
            let aud = super::http::claims(&access)?["aud"].clone();
            if !aud
                .as_array()
                .is_some_and(|all| all.iter().any(|a| a == self.clients.downstream.id.as_str()))
            {
                return Err(format!("exchanged token for {aud}"));
            }
        }
        Ok(())
    }
}
