//! Token status lists: how soon a revocation shows in the list (revoke
//! response to the first fetch with the bit set, over N revocations,
//! default 1,000); the list's size and what a fetch costs with L live
//! tokens (default 1,000,000) and 1 % of them revoked; and what each of
//! the resource-server SDK's revocation sources adds to its decision per
//! request. `writ serve` (release build) runs with its defaults, on
//! SQLite, and on PostgreSQL too when `WRIT_TEST_POSTGRES` names a server.
//! Prints numbers; it is not a test.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   target/release/bench-status [N] [L]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use writ_protocol::revocation::{Revocation, RevocationType, SCHEMA_VERSION};
use writ_protocol::status_list::{StatusList, StatusListClaims, INVALID};
use writ_resource_server::{Config, ResourceServer};
use writ_tests::load;
use writ_tests::writ_process::{self, Deployment, Server};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Issuing requests in flight at once while filling the list.
const CONCURRENCY: usize = 32;

fn claims_of(jwt: &str) -> Result<Value, Failure> {
    let payload = jwt.split('.').nth(1).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// A token's list URI and index.
fn entry(jwt: &str) -> Result<(String, u64), Failure> {
    let claims = claims_of(jwt)?;
    let entry = &claims["status"]["status_list"];
    Ok((
        entry["uri"].as_str().ok_or("no status")?.to_owned(),
        entry["idx"].as_u64().ok_or("no idx")?,
    ))
}

struct Bench {
    http: reqwest::Client,
    base: String,
    client: (String, String),
}

impl Bench {
    async fn token(&self) -> Result<String, Failure> {
        let answer: Value = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer["access_token"]
            .as_str()
            .ok_or("no token")?
            .to_owned())
    }

    async fn revoke(&self, token: &str) -> Result<(), Failure> {
        self.http
            .post(format!("{}/revoke", self.base))
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(&[("token", token)])
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The list as served, its size in bytes, and how long the fetch took.
    async fn fetch(&self, uri: &str) -> Result<(StatusList, usize, Duration), Failure> {
        let started = Instant::now();
        let body = self
            .http
            .get(uri)
            .header("accept", "application/statuslist+jwt")
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let took = started.elapsed();
        let claims: StatusListClaims = serde_json::from_value(claims_of(&body)?)?;
        Ok((StatusList::decode(&claims.status_list)?, body.len(), took))
    }

    /// Fetches until `idx` is INVALID; the time since `since`, and the
    /// duration of the fetch that first showed it.
    async fn until_invalid(
        &self,
        uri: &str,
        idx: u64,
        since: Instant,
    ) -> Result<(Duration, Duration), Failure> {
        loop {
            let (list, _, took) = self.fetch(uri).await?;
            if list.get(idx) == Some(INVALID) {
                return Ok((since.elapsed(), took));
            }
            if since.elapsed() > Duration::from_secs(30) {
                return Err("the bit did not flip within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn client(deployment: &Deployment) -> Result<(String, String), Failure> {
    let client = deployment.create_client(&[
        "--name",
        "bench",
        "--grant-type",
        "client_credentials",
        "--access-token-ttl",
        "1h",
    ])?;
    let secret = client.secret().to_owned();
    Ok((client.id, secret))
}

async fn flips(bench: &Bench, revocations: usize) -> Result<(), Failure> {
    let mut latencies = Vec::with_capacity(revocations);
    for _ in 0..revocations {
        let token = bench.token().await?;
        let (uri, idx) = entry(&token)?;
        bench.revoke(&token).await?;
        let answered = Instant::now();
        latencies.push(bench.until_invalid(&uri, idx, answered).await?.0);
    }
    println!(
        "  revoke response → bit INVALID in a fetch: {}",
        load::spread(&mut latencies, "samples")
    );
    Ok(())
}

/// Fills the list with `live` tokens, keeping every hundredth.
async fn fill(bench: &Arc<Bench>, live: usize) -> Result<Vec<String>, Failure> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let bench = bench.clone();
        tasks.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut n = worker;
            while n < live {
                let token = bench.token().await?;
                if n % 100 == 0 {
                    kept.push(token);
                }
                n += CONCURRENCY;
            }
            Ok::<_, Failure>(kept)
        }));
    }
    let mut kept = Vec::new();
    for task in tasks {
        kept.extend(task.await??);
    }
    println!(
        "  issued {live} tokens in {:.1} s ({:.0}/s, {CONCURRENCY} at a time)",
        started.elapsed().as_secs_f64(),
        live as f64 / started.elapsed().as_secs_f64()
    );
    Ok(kept)
}

async fn revoke_all(bench: &Arc<Bench>, tokens: Vec<String>) -> Result<(), Failure> {
    let tokens = Arc::new(tokens);
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (bench, tokens) = (bench.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            for token in tokens.iter().skip(worker).step_by(CONCURRENCY) {
                bench.revoke(token).await?;
            }
            Ok::<_, Failure>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn at_scale(bench: &Arc<Bench>, live: usize) -> Result<(), Failure> {
    let kept = fill(bench, live).await?;
    let sample = kept.last().ok_or("no tokens")?.clone();
    let (uri, _) = entry(&sample)?;
    let (before, bytes_before, _) = bench.fetch(&uri).await?;
    let set_before = (0..before.len())
        .filter(|i| before.get(*i) == Some(INVALID))
        .count();
    let in_the_list: Vec<String> = kept
        .into_iter()
        .filter(|token| entry(token).is_ok_and(|(u, _)| u == uri))
        .collect();
    let revoked = in_the_list.len();
    revoke_all(bench, in_the_list.clone()).await?;
    let last = entry(in_the_list.last().ok_or("none in the list")?)?.1;
    bench.until_invalid(&uri, last, Instant::now()).await?;
    let (list, bytes, _) = bench.fetch(&uri).await?;
    let set = (0..list.len())
        .filter(|i| list.get(*i) == Some(INVALID))
        .count();
    println!(
        "  the list: {} entries; served {bytes_before} bytes with {set_before} revoked, {bytes} bytes with {set} revoked ({revoked} more here)",
        list.len()
    );
    let mut cached = Vec::new();
    for _ in 0..200 {
        cached.push(bench.fetch(&uri).await?.2);
    }
    println!(
        "  fetch, unchanged list (kept signed): {}",
        load::spread(&mut cached, "samples")
    );
    let mut rebuilt = Vec::new();
    for _ in 0..50 {
        let token = bench.token().await?;
        let (uri, idx) = entry(&token)?;
        bench.revoke(&token).await?;
        rebuilt.push(bench.until_invalid(&uri, idx, Instant::now()).await?.1);
    }
    println!(
        "  fetch that first shows a new revocation (count, read, compress, sign): {}",
        load::spread(&mut rebuilt, "samples")
    );
    Ok(())
}

/// What one decision costs the SDK per request, the JWT's ES256
/// verification included, with each source.
async fn decisions(base: &str, token: &str) -> Result<(), Failure> {
    let claims = claims_of(token)?;
    let issuer = claims["iss"].as_str().ok_or("no iss")?.to_owned();
    let audience = match &claims["aud"] {
        Value::String(one) => one.clone(),
        Value::Array(all) => all
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    let server = |status_lists: bool| {
        let mut config = Config::new(issuer.clone(), audience.clone());
        config.jwks_url = format!("{base}/jwks");
        config.status_lists = status_lists;
        config.status_list_max_ttl = Duration::from_secs(3600);
        ResourceServer::new(config)
    };
    let deny_list = server(false);
    // A deny-list as Kafka, the SSE feed or Shared Signals leave it after
    // 10,000 revocations of other grants.
    for n in 0..10_000 {
        deny_list.apply(&Revocation {
            version: SCHEMA_VERSION,
            kind: RevocationType::GrantRevoked,
            jtis: vec![format!("jti-{n}")],
            gid: Some(format!("gid-{n}")),
            client_id: None,
            sub: None,
            revoked_at: chrono::Utc::now(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            reason: "bench".into(),
            cursor: format!("{n:020}"),
        });
    }
    let status_list = server(true);
    for (name, server) in [
        (
            "deny-list of 10,000 (Kafka, SSE or Shared Signals)",
            &deny_list,
        ),
        ("status list, kept in memory", &status_list),
    ] {
        // The first call fetches the JWKS (and the list).
        server
            .authenticate(token)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let mut samples = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let started = Instant::now();
            server
                .authenticate(token)
                .await
                .map_err(|e| format!("{e:?}"))?;
            samples.push(started.elapsed());
        }
        println!(
            "  SDK decision, {name}: {}",
            load::spread(&mut samples, "samples")
        );
    }
    Ok(())
}

async fn run(
    deployment: &Deployment,
    what: &str,
    revocations: usize,
    live: usize,
) -> Result<(), Failure> {
    if deployment.database_url.is_none() {
        deployment.run(&["keys", "init"])?;
    }
    let client = client(deployment)?;
    let writ: Server = deployment.serve()?;
    let bench = Arc::new(Bench {
        http: reqwest::Client::new(),
        base: writ.base.clone(),
        client,
    });
    println!("{what}:");
    flips(&bench, revocations).await?;
    at_scale(&bench, live).await?;
    // A token no revocation touched.
    decisions(&writ.base, &bench.token().await?).await?;
    writ.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let revocations: usize = writ_process::count_argument(1000)?;
    let live: usize = std::env::args()
        .nth(2)
        .map(|raw| raw.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let binary = writ_process::release_binary()?;
    let dir = tempfile::tempdir()?;
    let embedded = Deployment {
        binary: binary.clone(),
        data_dir: dir.path().to_owned(),
        database_url: None,
    };
    run(
        &embedded,
        "embedded (SQLite, synchronous=FULL)",
        revocations,
        live,
    )
    .await?;
    if std::env::var("WRIT_TEST_POSTGRES").is_ok() {
        let (_url, _dir, on_postgres) = writ_process::fresh_postgres_deployment(&binary)
            .await
            .map_err(|e| e.to_string())?;
        run(&on_postgres, "PostgreSQL", revocations, live).await?;
    }
    Ok(())
}
