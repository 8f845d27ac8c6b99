//! One server's token and introspection endpoints with one client's
//! credentials, as the token benchmark drives them: from this process for
//! the requests whose answers it needs, or as load for a generator.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};

use crate::{load, wrk};

pub const CLIENT_CREDENTIALS_BODY: &str = "grant_type=client_credentials&scope=read";

pub struct TokenEndpoints {
    pub token_url: String,
    pub introspection_url: String,
    pub authorization: String,
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub fn introspection_bodies(tokens: &[String]) -> Vec<String> {
    tokens
        .iter()
        .map(|token| format!("token={token}"))
        .collect()
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    body: String,
) -> Result<serde_json::Value, String> {
    let response = http
        .post(url)
        .header("authorization", authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status() != 200 {
        return Err(format!("{url}: {}", response.status()));
    }
    response.json().await.map_err(|e| format!("{url}: {e}"))
}

impl TokenEndpoints {
    pub fn writ(base: &str, authorization: &str) -> Self {
        Self {
            token_url: format!("{base}/token"),
            introspection_url: format!("{base}/introspect"),
            authorization: authorization.to_owned(),
        }
    }

    pub fn wrk_load<'a>(&'a self, url: &'a str, bodies: &'a [String]) -> wrk::Load<'a> {
        wrk::Load {
            url,
            authorization: &self.authorization,
            bodies,
        }
    }

    pub fn load_target(&self, url: &str, bodies: Vec<String>) -> load::Target {
        let bodies = Arc::new(bodies);
        load::Target {
            url: url.to_owned(),
            authorization: self.authorization.clone(),
            body: Arc::new(move |i| bodies[i % bodies.len()].clone()),
            dpop: None,
        }
    }

    /// `count` client-credentials tokens, `concurrency` requests at a time;
    /// anything but a 200 with a token is an error.
    pub async fn issue(
        &self,
        http: &reqwest::Client,
        count: usize,
        concurrency: usize,
    ) -> Result<Vec<String>, String> {
        futures::stream::iter(0..count)
            .map(|_| async {
                let body = CLIENT_CREDENTIALS_BODY.to_owned();
                let answer = post_form(http, &self.token_url, &self.authorization, body).await?;
                answer["access_token"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{}: no access_token in {answer}", self.token_url))
            })
            .buffer_unordered(concurrency)
            .try_collect()
            .await
    }

    /// How many of `tokens` the server does not report active.
    pub async fn inactive(
        &self,
        http: &reqwest::Client,
        tokens: &[String],
        concurrency: usize,
    ) -> Result<usize, String> {
        let answers: Vec<serde_json::Value> = futures::stream::iter(introspection_bodies(tokens))
            .map(|body| post_form(http, &self.introspection_url, &self.authorization, body))
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        Ok(answers
            .iter()
            .filter(|answer| answer["active"] != true)
            .count())
    }
}
