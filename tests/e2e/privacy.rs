//! Personal data: forgetting a person, no plaintext in the database, and
//! the read model rebuilt from the log equal to the live one.

use writ_projector::{rebuild_and_compare, Outcome, Projector};
use writ_store::statement::Statement;
use writ_store::verify_chains;
use writ_store::Store;

use crate::harness::{random_word, Backend, Deployment};

writ_testing::on_both_backends!(
    forgetting_a_person_leaves_ciphertext_only_and_everything_else_intact,
    the_database_holds_no_personal_data_or_secret_in_clear_and_rebuilds_exactly,
);

struct Person {
    username: String,
    email: String,
    name: String,
    password: String,
}

impl Person {
    fn random() -> Self {
        Self {
            username: random_word(14),
            email: format!("{}@{}.example", random_word(12), random_word(8)),
            name: random_word(16),
            password: random_word(20),
        }
    }

    fn create(&self, data: &Deployment) {
        let args = [
            "user",
            "create",
            "--username",
            &self.username,
            "--email",
            &self.email,
            "--name",
            &self.name,
            "--password-stdin",
        ];
        data.writ_with_stdin(&args, &format!("{}\n", self.password))
            .success();
    }
}

/// Opens the store in this process and brings the projector up to date, so
/// rebuilds compare against a caught-up audit index. On PostgreSQL other
/// tests' open transactions may hold the reader back for a moment.
pub(crate) async fn caught_up_store(data: &Deployment) -> Store {
    let store = data.store().await;
    let expected = store.event_count().await.unwrap_or_else(|e| panic!("{e}"));
    let mut projector = Projector::new(store.clone(), std::time::Duration::from_millis(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut indexed = 0;
    while std::time::Instant::now() < deadline {
        let count = Statement::new("SELECT count(*) FROM audit_index");
        indexed = store
            .db()
            .scalar_i64(&count)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if indexed >= expected {
            break;
        }
        if let Ok(Outcome::Idle) = projector.project_next().await {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(indexed, expected, "the projector caught up");
    store
}

/// Everything the database holds, as bytes: the SQLite files, or a dump.
pub(crate) fn database_bytes(data: &Deployment) -> Vec<u8> {
    match &data.database_url {
        None => {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(data.data.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.file_name().to_string_lossy().starts_with("writ.db") {
                    bytes.extend(std::fs::read(entry.path()).unwrap_or_default());
                }
            }
            bytes
        }
        Some(url) => {
            let dump = std::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(url)
                .output();
            let dump = dump.unwrap_or_else(|e| panic!("pg_dump: {e}"));
            assert!(
                dump.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
            dump.stdout
        }
    }
}

async fn forgetting_a_person_leaves_ciphertext_only_and_everything_else_intact(backend: Backend) {
    let data = Deployment::with_keys(backend).await;
    let (alice, bob) = (Person::random(), Person::random());
    alice.create(&data);
    bob.create(&data);
    let old = data
        .writ(&["user", "show", &alice.username, "--json"])
        .success()
        .json();
    data.writ(&["user", "forget", &alice.username]).success();

    let users = data.writ(&["user", "list", "--json"]).success().json();
    let by_sub = |sub: &serde_json::Value| {
        users
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["sub"] == *sub)
            .cloned()
            .unwrap_or_default()
    };
    let forgotten = by_sub(&old["sub"]);
    assert_eq!(
        (forgotten["username"].as_str(), forgotten["email"].as_str()),
        (Some("forgotten"), Some("forgotten"))
    );
    assert_eq!(forgotten["status"], "forgotten");
    let bob_shown = data
        .writ(&["user", "show", &bob.username, "--json"])
        .success()
        .json();
    assert_eq!(
        bob_shown["email"],
        bob.email.as_str(),
        "another user is unaffected"
    );

    let sub = old["sub"].as_str().unwrap_or_default();
    let key_rows = data
        .count(&format!(
            "SELECT count(*) FROM subject_keys WHERE sub = '{sub}'"
        ))
        .await;
    assert_eq!(
        key_rows, 0,
        "the data key is gone, so the login data cannot be decrypted"
    );
    assert!(data
        .writ(&["user", "show", &alice.username])
        .refused()
        .contains("no such account"));

    // The name is free again, for a new subject.
    alice.create(&data);
    let reborn = data
        .writ(&["user", "show", &alice.username, "--json"])
        .success()
        .json();
    assert_ne!(reborn["sub"], old["sub"]);

    let store = caught_up_store(&data).await;
    let (breaks, checked) = verify_chains(store.db())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        breaks.is_empty() && checked == 4,
        "chains verify after forgetting: {breaks:?}"
    );
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "{differences:?}");
}

async fn the_database_holds_no_personal_data_or_secret_in_clear_and_rebuilds_exactly(
    backend: Backend,
) {
    let data = Deployment::new(backend).await;
    let server = data.serve();
    let people: Vec<Person> = (0..3).map(|_| Person::random()).collect();
    for person in &people {
        person.create(&data);
    }
    data.writ_with_stdin(
        &[
            "user",
            "set-password",
            &people[0].username,
            "--password-stdin",
        ],
        "replacement-pass\n",
    )
    .success();
    data.writ(&["user", "disable", &people[1].username])
        .success();
    data.writ(&["user", "forget", &people[2].username])
        .success();
    let client = data
        .writ(&[
            "client", "create", "--name", "plain", "--scope", "api", "--json",
        ])
        .success()
        .json();
    let client_id = client["client_id"].as_str().unwrap_or_default().to_owned();
    let rotated = data
        .writ(&["client", "rotate-secret", &client_id, "--json"])
        .success()
        .json();
    data.writ(&["client", "disable", &client_id]).success();
    server.stop();

    let mut needles: Vec<String> = vec!["replacement-pass".into()];
    for person in &people {
        needles.extend([
            person.username.clone(),
            person.email.clone(),
            person.name.clone(),
            person.password.clone(),
        ]);
    }
    for secret in [&client["client_secret"], &rotated["client_secret"]] {
        needles.push(secret.as_str().unwrap_or("missing-secret").to_owned());
    }
    let haystack = database_bytes(&data);
    assert!(haystack.len() > 4096, "the database files were read");
    let text = String::from_utf8_lossy(&haystack);
    for needle in &needles {
        assert!(
            !text.contains(needle.as_str()),
            "{needle:?} is stored in clear"
        );
    }

    let store = caught_up_store(&data).await;
    let differences = rebuild_and_compare(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(differences.is_empty(), "{differences:?}");
}
