//! The soak's HTTP: one connection pool for all traffic, every request
//! timed into the [`Recorder`], cookies kept per person by hand (a client
//! per browser would cost more than the flow it drives).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::record::Recorder;

pub type Outcome<T> = Result<T, String>;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A string field of a JSON body, or why there is none.
    pub fn field(&self, name: &str) -> Outcome<String> {
        self.json()[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} in {} {}", self.status, self.short()))
    }

    pub fn expect(self, status: u16, what: &str) -> Outcome<Self> {
        if self.status == status {
            Ok(self)
        } else {
            Err(format!("{what}: {} {}", self.status, self.short()))
        }
    }

    /// The body cut to a line's length, for error messages.
    pub fn short(&self) -> String {
        self.body.chars().take(160).collect()
    }

    /// A hidden form field's value (Writ escapes only `&`, `<`, `>`, `"`,
    /// `'`, none of which its tokens contain).
    pub fn hidden(&self, name: &str) -> Outcome<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .map(|i| i + marker.len())
            .ok_or_else(|| format!("no field {name} on a {} page", self.status))?;
        let end = self.body[start..].find('"').unwrap_or(0) + start;
        Ok(self.body[start..end].to_owned())
    }

    pub fn has_form(&self, action: &str) -> bool {
        self.status == 200 && self.body.contains(&format!("action=\"{action}\""))
    }
}

/// A browser's cookies, by name.
#[derive(Default)]
pub struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for set in headers.get_all("set-cookie") {
            let Some((name, value)) = set
                .to_str()
                .ok()
                .and_then(|raw| raw.split(';').next())
                .and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            if value.is_empty() {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }
}

#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub recorder: Arc<Recorder>,
}

impl Http {
    pub fn new(recorder: Arc<Recorder>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(512)
            // Writ closes a connection whose next request's headers have
            // not come within header_read_timeout (10 s); a client that
            // keeps idle connections longer races that close, and reqwest
            // does not retry a POST whose connection was closed under it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self { client, recorder }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Outcome<Reply> {
        let started = Instant::now();
        let result = request.send().await;
        let reply = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                response.text().await.map(|body| Reply {
                    status,
                    headers,
                    body,
                })
            }
            Err(e) => Err(e),
        };
        self.recorder.request(started.elapsed());
        // A connection cut while the body was read is as much a transport
        // failure as one cut before the status line.
        reply.map_err(|e| format!("transport: {e}"))
    }

    /// A form POST, authenticated with `basic` when given.
    pub async fn post_form(
        &self,
        url: &str,
        basic: Option<&str>,
        params: &[(&str, &str)],
    ) -> Outcome<Reply> {
        self.post_form_from(url, basic, params, None).await
    }

    /// [`Self::post_form`] from a device at `address`, as the soak's load
    /// balancer (a trusted proxy of the command API) names it.
    pub async fn post_form_from(
        &self,
        url: &str,
        basic: Option<&str>,
        params: &[(&str, &str)],
        address: Option<&str>,
    ) -> Outcome<Reply> {
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(params));
        if let Some(basic) = basic {
            request = request.header("authorization", basic);
        }
        if let Some(address) = address {
            request = request.header("x-forwarded-for", address);
        }
        self.send(request).await
    }

    /// A browser's GET or form POST, with its cookies.
    pub async fn browse(
        &self,
        jar: &mut Jar,
        url: &str,
        params: Option<&[(&str, &str)]>,
    ) -> Outcome<Reply> {
        let mut request = match params {
            Some(params) => self
                .client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(params)),
            None => self.client.get(url),
        };
        if let Some(cookies) = jar.header() {
            request = request.header("cookie", cookies);
        }
        let reply = self.send(request).await?;
        jar.keep(&reply.headers);
        Ok(reply)
    }
}

pub fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The query parameter `name` of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A JWT's claims, unverified: the soak reads its own tokens' `jti`, `gid`
/// and `sub`; verifying them is the end-to-end tests' work.
pub fn claims(jwt: &str) -> Outcome<Value> {
    let payload = jwt.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| format!("JWT payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("JWT payload: {e}"))
}

pub fn claim(jwt: &str, name: &str) -> Outcome<String> {
    claims(jwt)?[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} in the token"))
}
