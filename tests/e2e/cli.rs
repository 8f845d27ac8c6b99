//! The administrative CLI: the examples as written, and every bad
//! input refused with one line, a non-zero exit, and no new event.

use crate::harness::{Backend, DataDir, Deployment};

writ_testing::on_both_backends!(
    the_documented_client_and_user_examples_work_as_written,
    clients_can_be_updated_rotated_and_disabled,
    users_can_change_password_be_disabled_and_listed,
    bad_input_is_refused_with_one_line_and_changes_nothing,
    ten_concurrent_creates_of_one_username_make_exactly_one_account,
);

const WEB_CLIENT: &[&str] = &[
    "client",
    "create",
    "--name",
    "web",
    "--redirect-uri",
    "http://127.0.0.1:9999/cb",
    "--grant-type",
    "authorization_code",
    "--grant-type",
    "refresh_token",
    "--scope",
    "openid profile email offline_access",
    "--json",
];

async fn the_documented_client_and_user_examples_work_as_written(backend: Backend) {
    let data = Deployment::with_keys(backend).await;
    let client = data.writ(WEB_CLIENT).success().json();
    assert_eq!(client["client_name"], "web");
    assert_eq!(client["redirect_uris"][0], "http://127.0.0.1:9999/cb");
    assert_eq!(
        client["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(client["scope"], "email offline_access openid profile");
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    let secret = client["client_secret"].as_str().unwrap_or_default();
    assert_eq!(secret.len(), 43, "256 bits, base64url");

    let user = data
        .writ_with_stdin(
            &[
                "user",
                "create",
                "--username",
                "alice",
                "--email",
                "alice@example.com",
                "--password-stdin",
                "--json",
            ],
            "s3cret-pass\n",
        )
        .success()
        .json();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["status"], "active");

    let client_id = client["client_id"].as_str().unwrap_or_default();
    let shown = data
        .writ(&["client", "show", client_id, "--json"])
        .success()
        .json();
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is shown only once"
    );
    let listed = data.writ(&["client", "list"]).success().stdout();
    assert!(listed.contains(client_id) && listed.contains("CLIENT_ID"));
}

async fn clients_can_be_updated_rotated_and_disabled(backend: Backend) {
    let data = Deployment::with_keys(backend).await;
    let client = data
        .writ(&[
            "client", "create", "--name", "svc", "--scope", "api", "--json",
        ])
        .success()
        .json();
    let id = client["client_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        client["grant_types"],
        serde_json::json!(["client_credentials"])
    );

    let updated = data
        .writ(&[
            "client",
            "update",
            &id,
            "--name",
            "renamed",
            "--access-token-ttl",
            "90s",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(
        (
            updated["client_name"].as_str(),
            updated["access_token_ttl"].as_str()
        ),
        (Some("renamed"), Some("1m 30s"))
    );
    assert_eq!(updated["scope"], "api", "flags not given keep their value");
    assert_eq!(updated["revocation_feed"], false, "off unless asked for");
    let feed = |value: &str| {
        data.writ(&["client", "update", &id, value, "--json"])
            .success()
            .json()["revocation_feed"]
            .clone()
    };
    assert_eq!(feed("--revocation-feed"), true);
    assert_eq!(
        feed("--name=kept"),
        true,
        "flags not given keep their value"
    );
    assert_eq!(feed("--revocation-feed=false"), false);
    let public = data
        .writ(&["client", "create", "--public", "--revocation-feed"])
        .refused();
    assert!(public.contains("revocation feed"), "{public}");

    let rotated = data
        .writ(&["client", "rotate-secret", &id, "--json"])
        .success()
        .json();
    assert_ne!(rotated["client_secret"], client["client_secret"]);

    let disabled = data
        .writ(&["client", "disable", &id, "--json"])
        .success()
        .json();
    assert_eq!(disabled["status"], "disabled");
    let again = data.writ(&["client", "disable", &id]).refused();
    assert!(again.contains("disabled"), "{again}");
}

#[tokio::test]
async fn a_demo_client_takes_its_id_and_secret_from_the_caller() {
    let data = DataDir::with_keys();
    let args = [
        "client",
        "create",
        "--name",
        "demo",
        "--client-id",
        "demo-app",
        "--secret-stdin",
        "--allow-weak-secret",
        "--json",
    ];
    let client = data.writ_with_stdin(&args, "demo\n").success().json();
    assert_eq!(
        (
            client["client_id"].as_str(),
            client["client_secret"].as_str()
        ),
        (Some("demo-app"), Some("demo"))
    );
}

async fn users_can_change_password_be_disabled_and_listed(backend: Backend) {
    let data = Deployment::with_keys(backend).await;
    data.writ_with_stdin(
        &[
            "user",
            "create",
            "--username",
            "Bob",
            "--name",
            "Bob B",
            "--password-stdin",
        ],
        "pw-one\n",
    )
    .success();
    data.writ_with_stdin(
        &["user", "set-password", "bob", "--password-stdin"],
        "pw-two\n",
    )
    .success();
    let shown = data
        .writ(&["user", "disable", "BOB", "--json"])
        .success()
        .json();
    assert_eq!(
        (
            shown["username"].as_str(),
            shown["name"].as_str(),
            shown["status"].as_str()
        ),
        (Some("bob"), Some("Bob B"), Some("disabled"))
    );
    let listed = data.writ(&["user", "list"]).success().stdout();
    assert!(
        listed.contains("bob") && listed.contains("disabled"),
        "{listed}"
    );
}

struct BadInput {
    args: &'static [&'static str],
    stdin: &'static str,
    says: &'static str,
}

const BAD_INPUTS: &[BadInput] = &[
    BadInput {
        args: &["client", "create", "--name", "x", "--bogus-flag"],
        stdin: "",
        says: "unexpected argument",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "https://app.example/cb#frag",
        ],
        stdin: "",
        says: "fragment",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "javascript:alert(1)",
        ],
        stdin: "",
        says: "can run code",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "data:text/html,hi",
        ],
        stdin: "",
        says: "can run code",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "vbscript:msgbox",
        ],
        stdin: "",
        says: "can run code",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "http://app.example/cb",
        ],
        stdin: "",
        says: "loopback",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--grant-type",
            "implicit",
        ],
        stdin: "",
        says: "unknown grant type",
    },
    BadInput {
        args: &["client", "create", "--name", "x", "--scope", "a\"b"],
        stdin: "",
        says: "scope",
    },
    BadInput {
        args: &["client", "create", "--name", "x", "--secret-stdin"],
        stdin: "short\n",
        says: "shorter than 32",
    },
    BadInput {
        args: &["client", "create", "--name", "", "--scope", "api"],
        stdin: "",
        says: "name must not be empty",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--public",
            "--grant-type",
            "client_credentials",
        ],
        stdin: "",
        says: "public clients cannot",
    },
    BadInput {
        args: &[
            "client",
            "create",
            "--name",
            "x",
            "--access-token-ttl",
            "soon",
        ],
        stdin: "",
        says: "invalid value",
    },
    BadInput {
        args: &["client", "show", "nope"],
        stdin: "",
        says: "no such client",
    },
    BadInput {
        args: &["client", "rotate-secret", "nope"],
        stdin: "",
        says: "no such client",
    },
    BadInput {
        args: &["user", "create", "--username", "taken", "--password-stdin"],
        stdin: "another\n",
        says: "already exists",
    },
    BadInput {
        args: &[
            "user",
            "create",
            "--username",
            "empty-pw",
            "--password-stdin",
        ],
        stdin: "\n",
        says: "must not be empty",
    },
    BadInput {
        args: &["user", "create", "--username", "no-pw"],
        stdin: "",
        says: "--password-stdin",
    },
    BadInput {
        args: &[
            "user",
            "create",
            "--username",
            "has space",
            "--password-stdin",
        ],
        stdin: "pw\n",
        says: "username is not allowed",
    },
    BadInput {
        args: &[
            "user",
            "create",
            "--username",
            "e",
            "--email",
            "not-an-email",
            "--password-stdin",
        ],
        stdin: "pw\n",
        says: "not an email",
    },
    BadInput {
        args: &["user", "disable", "ghost"],
        stdin: "",
        says: "no such account",
    },
    BadInput {
        args: &["user", "forget", "ghost"],
        stdin: "",
        says: "no such account",
    },
];

async fn bad_input_is_refused_with_one_line_and_changes_nothing(backend: Backend) {
    let data = Deployment::with_keys(backend).await;
    data.writ_with_stdin(
        &["user", "create", "--username", "taken", "--password-stdin"],
        "pw\n",
    )
    .success();
    for bad in BAD_INPUTS {
        let before = data.event_count().await;
        let line = data.writ_with_stdin(bad.args, bad.stdin).refused();
        assert!(
            line.contains(bad.says),
            "{:?}: expected {:?} in {line}",
            bad.args,
            bad.says
        );
        assert_eq!(
            data.event_count().await,
            before,
            "{:?} appended events",
            bad.args
        );
    }
}

#[tokio::test]
async fn a_missing_key_file_is_refused_by_every_command_but_serve() {
    let data = DataDir::new();
    for args in [&["client", "list"][..], &["user", "list"], &["migrate"]] {
        let line = data.writ(args).refused();
        assert!(
            line.contains("key file")
                && line.contains("missing")
                && line.contains("writ keys init"),
            "{line}"
        );
    }
    assert_eq!(data.event_count().await, 0);
    let again = DataDir::with_keys();
    let line = again.writ(&["keys", "init"]).refused();
    assert!(line.contains("already exists"), "{line}");
}

#[tokio::test]
async fn an_unusable_data_directory_is_refused() {
    let data = DataDir::with_keys();
    let not_a_dir = data.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap_or_else(|e| panic!("{e}"));
    let mut command = std::process::Command::new(crate::harness::writ_binary());
    command
        .args(["--data-dir"])
        .arg(&not_a_dir)
        .arg("--key-file")
        .arg(data.path().join("keys"))
        .args(["client", "list"]);
    let line = crate::harness::run(command, "").refused();
    assert!(line.contains("data directory"), "{line}");
}

async fn ten_concurrent_creates_of_one_username_make_exactly_one_account(backend: Backend) {
    let data = Deployment::with_keys(backend).await;
    data.writ(&["migrate"]).success();
    let children: Vec<_> = (0..10)
        .map(|_| {
            let command =
                data.command(&["user", "create", "--username", "bob", "--password-stdin"]);
            std::thread::spawn(move || crate::harness::run(command, "pw\n"))
        })
        .collect();
    let runs: Vec<_> = children
        .into_iter()
        .map(|c| c.join().unwrap_or_else(|_| panic!("thread")))
        .collect();
    let succeeded = runs.iter().filter(|r| r.0.status.success()).count();
    assert_eq!(
        succeeded,
        1,
        "{:?}",
        runs.iter().map(|r| r.stderr()).collect::<Vec<_>>()
    );
    for failed in runs.into_iter().filter(|r| !r.0.status.success()) {
        assert!(failed.refused().contains("already exists"));
    }
    let accounts = data.count("SELECT count(*) FROM accounts").await;
    let keys = data.count("SELECT count(*) FROM subject_keys").await;
    assert_eq!((accounts, keys), (1, 1));
}

#[tokio::test]
async fn settings_come_from_flags_then_environment_then_the_config_file() {
    let data = DataDir::new();
    let file = data.path().join("writ.toml");
    std::fs::write(
        &file,
        format!("key_file = \"{}/from-file\"\n", data.path().display()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let init = |extra_env: Option<&str>, flag: Option<&str>| {
        let mut command = std::process::Command::new(crate::harness::writ_binary());
        command.arg("--config").arg(&file).args(["keys", "init"]);
        if let Some(name) = flag {
            command.arg("--key-file").arg(data.path().join(name));
        }
        if let Some(name) = extra_env {
            command.env("WRIT_KEY_FILE", data.path().join(name));
        }
        crate::harness::run(command, "").success().stdout()
    };
    assert!(init(None, None).contains("from-file"));
    assert!(init(Some("from-env"), None).contains("from-env"));
    assert!(init(Some("from-env-2"), Some("from-flag")).contains("from-flag"));
    std::fs::write(&file, "no_such_key = 1\n").unwrap_or_else(|e| panic!("{e}"));
    let mut command = std::process::Command::new(crate::harness::writ_binary());
    command.arg("--config").arg(&file).args(["keys", "init"]);
    let line = crate::harness::run(command, "").refused();
    assert!(
        line.contains("no_such_key") || line.contains("unknown field"),
        "{line}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: `bash scripts/test` starts it and runs this"]
async fn a_database_url_without_a_key_file_is_refused_even_for_serve() {
    let url = writ_testing::fresh_postgres_database()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let data = DataDir::new();
    for args in [
        &["client", "list"][..],
        &["serve", "--listen", "127.0.0.1:0"],
        &["migrate"],
    ] {
        let mut command = data.command(&["--database-url", &url]);
        command.args(args);
        let line = crate::harness::run(command, "").refused();
        assert!(
            line.contains("key file") && line.contains("writ keys init --key-file"),
            "{line}"
        );
    }
    assert!(
        !data.path().join("keys").exists(),
        "no key file was invented"
    );
}
