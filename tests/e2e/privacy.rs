//! Personal data: forgetting a person, no plaintext in the database, and
//! the read model rebuilt from the log equal to the live one.

use writ_infra::store::verify_chains;
use writ_infra::Store;
use writ_projector::{rebuild_and_compare, Outcome, Projector};

use crate::harness::{random_word, DataDir, Server};

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

    fn create(&self, data: &DataDir) {
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
/// rebuilds compare against a caught-up audit index.
async fn caught_up_store(data: &DataDir) -> Store {
    let store = Store::open_sqlite(data.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut projector = Projector::new(store.clone(), std::time::Duration::from_millis(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    while let Ok(Outcome::Projected { .. }) = projector.project_next().await {}
    store
}

#[tokio::test]
async fn forgetting_a_person_leaves_ciphertext_only_and_everything_else_intact() {
    let data = DataDir::with_keys();
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

    let pool = data.pool().await;
    let key_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_keys WHERE sub = ?")
        .bind(old["sub"].as_str())
        .fetch_one(&pool)
        .await
        .unwrap_or(-1);
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

#[tokio::test]
async fn the_database_holds_no_personal_data_or_secret_in_clear_and_rebuilds_exactly() {
    let data = DataDir::new();
    let server = Server::start(&data);
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
    let mut haystack = Vec::new();
    for entry in std::fs::read_dir(data.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("writ.db") {
            haystack.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
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
