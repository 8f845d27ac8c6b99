//! What `private_key_jwt` and DPoP cost on the token endpoint, against a
//! client secret and a bearer token, in one run.
//!
//!   cargo build --release -p writ-cli -p writ-tests --bins
//!   target/release/bench-client-auth [SECONDS] [--postgres URL]
//!
//! Writ runs as the release binary with its defaults (SQLite WAL with
//! synchronous=FULL, or PostgreSQL with `--postgres URL`). Clients ask for
//! client_credentials tokens three ways: `client_secret_basic` for a
//! bearer token (the baseline), `private_key_jwt` (ES256 assertions), and
//! `client_secret_basic` with an ES256 DPoP proof (RFC 9449) for a
//! DPoP-bound token. Assertions and proofs are single use, so wrk's one
//! fixed body cannot carry them: every side is driven by this crate's
//! closed-loop generator, 32 connections, `ROUNDS` rounds alternating.
//! Assertions and proofs are signed before each round, so the generator
//! does the same work per request for every side, and the ratios are
//! Writ's: verifying the signature and committing the
//! `ClientAssertionAccepted` or `DpopProofAccepted` event, in a batch of
//! its own, before the token's.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;
use writ_tests::load::{self, Stats, Target};
use writ_tests::writ_process::{self, Deployment, Registered};

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 3;
/// Above what one round can use at the secret side's rate.
const ASSERTIONS_PER_ROUND_PER_SECOND: usize = 15_000;
/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, form-encoded.
const JWT_BEARER_FORM: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

type Failure = Box<dyn std::error::Error>;

struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Result<Self, Failure> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| format!("{e}"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| format!("{e}"))?;
        Ok(Self { pair, rng })
    }

    fn jwks(&self) -> serde_json::Value {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
    }

    /// `count` compact ES256 JWSs under `header`, the i-th with the
    /// claims `claims(i, jti)` makes; every `jti` is unique across rounds
    /// and runs, as single use demands.
    fn signed(
        &self,
        header: &serde_json::Value,
        count: usize,
        claims: impl Fn(String) -> serde_json::Value,
    ) -> Result<Vec<String>, Failure> {
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        (0..count)
            .map(|i| {
                let claims = claims(format!("{run}-{i}"));
                let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
                let signature = self
                    .pair
                    .sign(&self.rng, input.as_bytes())
                    .map_err(|e| format!("{e}"))?;
                Ok(format!(
                    "{input}.{}",
                    URL_SAFE_NO_PAD.encode(signature.as_ref())
                ))
            })
            .collect()
    }

    /// Form bodies of `count` client_credentials requests, each with an
    /// assertion of its own.
    fn bodies(&self, client_id: &str, issuer: &str, count: usize) -> Result<Vec<String>, Failure> {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "ES256", "kid": "bench"});
        let assertions = self.signed(&header, count, |jti| {
            json!({
                "iss": client_id, "sub": client_id, "aud": issuer,
                "jti": jti, "iat": now, "exp": now + 540,
            })
        })?;
        Ok(assertions
            .into_iter()
            .map(|assertion| format!(
                "grant_type=client_credentials&scope=read&client_assertion_type={JWT_BEARER_FORM}&client_assertion={assertion}"
            ))
            .collect())
    }

    /// `count` DPoP proofs for POSTs to `url`, each with its own `jti`.
    fn proofs(&self, url: &str, count: usize) -> Result<Vec<String>, Failure> {
        let point = self.pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let now = chrono::Utc::now().timestamp();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        self.signed(
            &header,
            count,
            |jti| json!({"jti": jti, "htm": "POST", "htu": url, "iat": now}),
        )
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(name: &str, stats: &Stats) -> Result<f64, Failure> {
    println!(
        "  {name:<20} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        stats.per_second(),
        ms(stats.percentile(0.5)),
        ms(stats.percentile(0.99))
    );
    if stats.failed > 0 {
        return Err(format!(
            "{name}: {} failed requests: {:?}",
            stats.failed, stats.failures
        )
        .into());
    }
    Ok(stats.per_second())
}

fn create_client(deployment: &Deployment, extra: &[&str]) -> Result<Registered, Failure> {
    let mut args = vec!["--name", "bench", "--scope", "read"];
    args.extend_from_slice(extra);
    Ok(deployment.create_client(&args)?)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let (seconds, database_url) = writ_process::run_arguments()?;
    let work = tempfile::tempdir()?;
    let deployment = Deployment {
        binary: writ_process::release_binary()?,
        data_dir: work.path().join("writ"),
        database_url,
    };
    std::fs::create_dir_all(&deployment.data_dir)?;
    deployment.run(&["keys", "init"])?;
    let signer = Signer::new()?;
    let jwks_file = work.path().join("bench-jwks.json");
    std::fs::write(&jwks_file, signer.jwks().to_string())?;
    let secret_client = create_client(&deployment, &[])?;
    let keyed = create_client(&deployment, &["--jwks-file", &jwks_file.to_string_lossy()])?;
    let keyed_id = keyed.id;
    let server = deployment.serve()?;
    let token_url = format!("{}/token", server.base);
    let secret = Target {
        url: token_url.clone(),
        authorization: secret_client.basic(),
        body: Arc::new(|_| "grant_type=client_credentials&scope=read".to_owned()),
        dpop: None,
    };
    let dpop_key = Signer::new()?;
    let backend = match &deployment.database_url {
        Some(_) => "PostgreSQL (synchronous_commit=on)",
        None => "embedded SQLite (WAL, synchronous=FULL)",
    };
    println!(
        "client_credentials at /token, Writ release on {backend}: client_secret_basic (bearer) vs private_key_jwt (ES256) vs client_secret_basic with a DPoP proof (ES256), {CONNECTIONS} connections, {}s rounds",
        seconds.as_secs()
    );
    let warm = load::closed_loop(&secret, CONNECTIONS, Duration::from_secs(2)).await;
    report("warm-up (secret)", &warm)?;

    let per_round = ASSERTIONS_PER_ROUND_PER_SECOND * seconds.as_secs() as usize;
    let (mut secret_rates, mut keyed_rates, mut dpop_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        println!("round {round}");
        secret_rates.push(report(
            "client_secret_basic",
            &load::closed_loop(&secret, CONNECTIONS, seconds).await,
        )?);
        let bodies = Arc::new(signer.bodies(&keyed_id, &server.base, per_round)?);
        let keyed_target = Target {
            url: token_url.clone(),
            authorization: String::new(),
            body: Arc::new(move |i| bodies[i % bodies.len()].clone()),
            dpop: None,
        };
        keyed_rates.push(report(
            "private_key_jwt",
            &load::closed_loop(&keyed_target, CONNECTIONS, seconds).await,
        )?);
        let proofs = Arc::new(dpop_key.proofs(&token_url, per_round)?);
        let dpop_target = Target {
            dpop: Some(Arc::new(move |i| proofs[i % proofs.len()].clone())),
            ..secret.clone()
        };
        let dpop = load::closed_loop(&dpop_target, CONNECTIONS, seconds).await;
        if !dpop.samples.iter().all(|body| body.contains("\"DPoP\"")) {
            return Err("a DPoP request got a token that is not DPoP-bound".into());
        }
        dpop_rates.push(report("DPoP", &dpop)?);
    }
    let (secret_median, keyed_median, dpop_median) = (
        median(secret_rates),
        median(keyed_rates),
        median(dpop_rates),
    );
    println!(
        "median: client_secret_basic {secret_median:.0} req/s, private_key_jwt {keyed_median:.0} req/s ({:.2}x), DPoP {dpop_median:.0} req/s ({:.2}x)",
        keyed_median / secret_median,
        dpop_median / secret_median
    );
    server.stop();
    Ok(())
}
