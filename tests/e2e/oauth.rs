//! Raw HTTP helpers for the OAuth endpoints: bodies are built by hand so
//! tests can send exactly the malformed requests they mean to.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Deployment, Server};

#[derive(Debug, Clone)]
pub struct Creds {
    pub id: String,
    pub secret: String,
}

/// Registers a client through the CLI and returns its id and secret.
pub fn client(deployment: &Deployment, args: &[&str]) -> Creds {
    let mut all = vec!["--json", "client", "create"];
    if !args.contains(&"--name") {
        all.extend(["--name", "test client"]);
    }
    all.extend_from_slice(args);
    let created = deployment.writ(&all).success().json();
    Creds {
        id: created["client_id"].as_str().unwrap_or_default().to_owned(),
        secret: created["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    pub fn field(&self, name: &str) -> String {
        self.body[name].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

pub fn form(params: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // Below Writ's idle close (header_read_timeout), as a
                // well-behaved client keeps it: a kept-alive connection is
                // never reused at the moment the server closes it.
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            base: server.url(""),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The status of a GET, or 0 when nothing answered.
    pub async fn status(&self, path: &str) -> u16 {
        self.http
            .get(self.url(path))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// The OpenID Connect discovery document.
    pub async fn discovery(&self) -> Value {
        self.json("/.well-known/openid-configuration").await
    }

    /// A GET's JSON body, as `T`.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The body of a GET, or `None` when nothing answered.
    pub async fn text(&self, path: &str) -> Option<String> {
        self.http
            .get(self.url(path))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// POSTs a raw form body with optional Basic credentials.
    pub async fn post(&self, path: &str, basic: Option<&Creds>, body: String) -> Reply {
        self.try_post(path, basic, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Api::post`], but a request that gets no answer (a dying server)
    /// is an `Err` instead of a panic.
    pub async fn try_post(
        &self,
        path: &str,
        basic: Option<&Creds>,
        body: String,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(creds) = basic {
            request = request.basic_auth(&creds.id, Some(&creds.secret));
        }
        Self::try_reply(request).await
    }

    pub async fn reply(request: reqwest::RequestBuilder) -> Reply {
        Self::try_reply(request)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_reply(request: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    pub async fn token(&self, creds: &Creds, params: &[(&str, &str)]) -> Reply {
        self.post("/token", Some(creds), form(params)).await
    }

    pub async fn client_credentials(&self, creds: &Creds) -> String {
        let reply = self
            .token(creds, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.field("access_token")
    }

    pub async fn password(&self, creds: &Creds, username: &str, password: &str) -> Reply {
        self.token(
            creds,
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", "openid profile email"),
            ],
        )
        .await
    }

    pub async fn refresh(&self, creds: &Creds, refresh_token: &str) -> Reply {
        self.token(
            creds,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    pub async fn introspect(&self, caller: &Creds, token: &str) -> Value {
        let reply = self
            .post("/introspect", Some(caller), form(&[("token", token)]))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    pub async fn is_active(&self, caller: &Creds, token: &str) -> bool {
        self.introspect(caller, token).await["active"] == Value::Bool(true)
    }

    /// A client-credentials token, or `None` when no 200 came back (the
    /// server may be dying).
    pub async fn try_client_credentials(&self, creds: &Creds) -> Option<String> {
        let body = form(&[("grant_type", "client_credentials")]);
        let reply = self.try_post("/token", Some(creds), body).await.ok()?;
        let token = reply.field("access_token");
        (reply.status == 200 && !token.is_empty()).then_some(token)
    }

    /// The status of a revocation, or `None` if no answer came back.
    pub async fn try_revoke(&self, creds: &Creds, token: &str) -> Option<u16> {
        let body = form(&[("token", token)]);
        let reply = self.try_post("/revoke", Some(creds), body).await.ok()?;
        Some(reply.status.as_u16())
    }

    pub async fn revoke(&self, creds: &Creds, token: &str) -> Reply {
        self.post("/revoke", Some(creds), form(&[("token", token)]))
            .await
    }
}
