//! F12: two command-api processes whose hosts' clocks are 5 s ahead and
//! 5 s behind (Debian's `faketime`, monotonic clocks left alone) agree on
//! every expiry, because Writ judges time by the database server's clock.

use std::time::{Duration, Instant};

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{Backend, Deployment, Server};
use crate::oauth::Api;
use crate::split::start;

/// libfaketime preloaded straight into `writ`: the `faketime` wrapper
/// forks, so stopping it would leave `writ` running.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn skewed(deployment: &Deployment, offset: &str) -> Server {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing; the test script installs faketime"
    );
    let mut command = deployment.command(&[
        "command-api",
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--issuer",
        "http://writ.test",
        "--code-ttl",
        "3s",
        "--refresh-token-idle-ttl",
        "3s",
    ]);
    command
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    Server::start_command(command)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn command_apis_with_skewed_clocks_agree_on_code_token_and_refresh_expiry() {
    let deployment = Deployment::with_keys(Backend::Postgres).await;
    let app = browser::web_client(&deployment, &["--access-token-ttl", "3s"]);
    browser::user(&deployment, "zoe");
    let (ahead, behind) = (skewed(&deployment, "+5s"), skewed(&deployment, "-5s"));
    let query = start(&deployment, "query-api", &[]);
    for server in [&ahead, &behind] {
        assert!(
            server
                .log_lines()
                .iter()
                .any(|l| l.contains("differs from the database")),
            "faketime skewed the process and Writ noticed"
        );
    }
    let (late, read) = (Api::new(&ahead), Api::new(&query));

    // A code issued by the host 5 s behind, redeemed at once by the one 5 s
    // ahead: 10 s apart by their own clocks, 3 s lifetime, still valid.
    let person = Browser::new(&behind);
    let back = person
        .code_flow(&browser::oidc_params(&app.id, "s"), "zoe")
        .await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let tokens = browser::redeem(&late, &app, &code).await;
    assert_eq!(tokens.status, 200, "code expiry agrees: {}", tokens.body);
    let introspected = read.introspect(&app, &tokens.field("access_token")).await;
    assert_eq!(
        introspected["active"], true,
        "token expiry agrees: {introspected}"
    );
    let now = chrono::Utc::now().timestamp();
    let iat = introspected["iat"].as_i64().unwrap_or_default();
    assert!(
        (iat - now).abs() <= 1,
        "iat {iat} is the database's time, not a skewed host's ({now})"
    );

    // The refresh token was issued 'behind'; its 3 s idle lifetime holds 'ahead'.
    let refreshed = late.refresh(&app, &tokens.field("refresh_token")).await;
    assert_eq!(
        refreshed.status, 200,
        "refresh expiry agrees: {}",
        refreshed.body
    );
    let issued = Instant::now();
    let access = refreshed.field("access_token");
    assert!(read.is_active(&app, &access).await);
    // Issued 'ahead' with 3 s to live: inactive once 3 s have really passed.
    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(issued.elapsed())).await;
    assert!(
        !read.is_active(&app, &access).await,
        "expired by the shared clock"
    );
}
