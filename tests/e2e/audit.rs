//! `writ audit`: a scripted timeline (consent, tokens, refresh, withdrawal,
//! a new consent) and the answers at each boundary between its steps.

use serde_json::Value;
use writ_store::statement::Statement;
use writ_store::RowExt;

use crate::browser::{self, Browser, REDIRECT_URI};
use crate::harness::{eventually, Backend, Deployment};
use crate::oauth::Api;

/// The commit time of the log's newest event: a boundary just after the
/// step that wrote it.
async fn boundary(deployment: &Deployment) -> String {
    boundary_where(deployment, "TRUE").await
}

/// The commit time of the last event matching `condition`.
async fn boundary_where(deployment: &Deployment, condition: &str) -> String {
    let sql = match deployment.database_url {
        Some(_) => format!("SELECT to_char(max(recorded_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS at FROM events WHERE {condition}"),
        None => format!("SELECT max(recorded_at) AS at FROM events WHERE {condition}"),
    };
    let at = deployment
        .store()
        .await
        .db()
        .fetch_optional(&Statement::new(sql))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|row| row.text("at"))
        .unwrap_or_else(|| panic!("an empty log"));
    // The next step's events must be committed strictly later.
    std::thread::sleep(std::time::Duration::from_millis(5));
    at
}

fn audit(deployment: &Deployment, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["--json", "audit"];
    full.extend_from_slice(args);
    let run = deployment.writ(&full).success();
    serde_json::from_str::<Value>(&run.stdout())
        .unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// (gid, status) of each grant carol held at `at`.
fn grants_at(deployment: &Deployment, at: &str) -> Vec<(String, String)> {
    audit(deployment, &["grants", "--subject", "carol", "--as-of", at])
        .iter()
        .map(|g| {
            (
                g["gid"].as_str().unwrap_or_default().to_owned(),
                g["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn who_can_read_profile(deployment: &Deployment, at: &str) -> Vec<(String, String)> {
    audit(deployment, &["who-can", "--scope", "profile", "--at", at])
        .iter()
        .map(|g| {
            (
                g["sub"].as_str().unwrap_or_default().to_owned(),
                g["client_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

writ_testing::on_both_backends!(the_timeline_gives_exact_answers_at_each_boundary);

async fn the_timeline_gives_exact_answers_at_each_boundary(backend: Backend) {
    let deployment = Deployment::with_keys(backend).await;
    let app = browser::web_client(&deployment, &[]);
    browser::user(&deployment, "carol");
    let writ = deployment.serve();
    let api = Api::new(&writ);
    let carol = Browser::new(&writ);
    let params = browser::oidc_params(&app.id, "s");

    // t1: consent, and a code.
    let back = carol.code_flow(&params, "carol").await;
    let code = back.redirect_query(REDIRECT_URI)["code"].clone();
    let t1 = boundary(&deployment).await;
    // t2: tokens.
    let tokens = browser::redeem(&api, &app, &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let t2 = boundary(&deployment).await;
    // t3: a refresh.
    let refreshed = api.refresh(&app, &tokens.field("refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let t3 = boundary(&deployment).await;
    // t4: the consent withdrawn on the account page. Its own commit time:
    // the policy may already have revoked the grant after it.
    assert_eq!(carol.withdraw_consent(&app.id).await.status, 303);
    let t4 = boundary_where(&deployment, "event_type = 'ConsentWithdrawn'").await;
    // t5: a new consent, and a new code.
    let again = carol.code_flow(&params, "carol").await;
    assert!(again.redirect_query(REDIRECT_URI).contains_key("code"));
    let t5 = boundary(&deployment).await;

    let first = grants_at(&deployment, &t1);
    assert_eq!(first.len(), 1, "{first:?}");
    let g1 = first[0].0.clone();
    assert_eq!(first[0].1, "code issued", "t1: a code, no token yet");
    assert_eq!(
        grants_at(&deployment, &t2),
        vec![(g1.clone(), "active".to_owned())]
    );
    assert_eq!(
        grants_at(&deployment, &t3),
        vec![(g1.clone(), "active".to_owned())]
    );
    assert_eq!(
        grants_at(&deployment, &t4),
        vec![(g1.clone(), "revoked".to_owned())]
    );
    let last = grants_at(&deployment, &t5);
    assert_eq!(last.len(), 2, "{last:?}");
    assert_eq!(last[0], (g1.clone(), "revoked".to_owned()));
    assert_eq!(last[1].1, "code issued", "t5: the new consent's code");

    let now = audit(&deployment, &["grants", "--subject", "carol"]);
    assert_eq!(now.len(), 2, "as of now by default: {now:?}");
    let carol_sub = deployment
        .store()
        .await
        .db()
        .fetch_optional(&Statement::new("SELECT sub FROM grants WHERE gid = $1").text(g1.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|row| row.text("sub"))
        .unwrap_or_default();
    let holder = vec![(carol_sub.clone(), app.id.clone())];
    assert_eq!(
        who_can_read_profile(&deployment, &t1),
        vec![],
        "t1: no token"
    );
    assert_eq!(who_can_read_profile(&deployment, &t2), holder, "t2");
    assert_eq!(who_can_read_profile(&deployment, &t3), holder, "t3");
    assert_eq!(
        who_can_read_profile(&deployment, &t4),
        vec![],
        "t4: withdrawn"
    );
    assert_eq!(
        who_can_read_profile(&deployment, &t5),
        vec![],
        "t5: a code only"
    );

    let consents = audit(&deployment, &["consents", "--subject", &carol_sub]);
    let events: Vec<&str> = consents
        .iter()
        .filter_map(|c| c["event"].as_str())
        .collect();
    assert_eq!(
        events,
        ["ConsentGranted", "ConsentWithdrawn", "ConsentGranted"]
    );
    assert!(consents.iter().all(|c| c["client_id"] == app.id.as_str()));
    assert!(
        consents[1]["by"].is_string() && consents[1]["reason"].is_string(),
        "{consents:?}"
    );
    assert!(
        consents[0]["request_id"].is_string(),
        "through which request"
    );

    let lineage = audit(&deployment, &["history", "--grant", &g1]);
    let kinds: Vec<&str> = lineage.iter().filter_map(|e| e["event"].as_str()).collect();
    for expected in [
        "ConsentGranted",
        "CodeIssued",
        "CodeRedeemed",
        "AccessTokenIssued",
        "RefreshTokenRotated",
        "GrantRevoked",
    ] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
    let cursors: Vec<&str> = lineage
        .iter()
        .filter_map(|e| e["cursor"].as_str())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "in log order");
    let redeemed = lineage
        .iter()
        .find(|e| e["event"] == "CodeRedeemed")
        .map(|e| e["details"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    assert!(
        redeemed.contains("client_auth=client_secret_basic"),
        "how the client authenticated to redeem: {redeemed:?}"
    );
    let dot = deployment
        .writ(&["audit", "history", "--grant", &g1, "--format", "dot"])
        .success()
        .stdout();
    assert!(
        dot.starts_with("digraph") && dot.contains("GrantRevoked"),
        "{dot}"
    );
    let events = deployment.event_count().await;
    let exported = eventually("the projector to index every event", || async {
        let run = deployment.writ(&[
            "audit",
            "export",
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ]);
        let lines: Vec<Value> = run
            .stdout()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        (lines.len() as i64 == events).then_some(lines)
    })
    .await;
    assert!(exported
        .iter()
        .all(|e| e["cursor"].is_string() && e["event_type"].is_string()));
    let csv = deployment
        .writ(&[
            "audit", "export", "--from", &t1, "--to", &t4, "--format", "csv",
        ])
        .success()
        .stdout();
    assert!(
        csv.starts_with("cursor,recorded_at,aggregate_type"),
        "{csv}"
    );
    assert!(
        csv.contains("RefreshTokenRotated") && !csv.contains("ConsentWithdrawn"),
        "{csv}"
    );
    let missing = deployment.writ(&["audit", "history", "--grant", "nope"]);
    assert!(!missing.0.status.success() && missing.stderr().contains("no such grant"));
}
