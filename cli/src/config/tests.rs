use std::io::Write;

use secrecy::ExposeSecret;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    file
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let config = file(concat!(
        "listen = \"127.0.0.1:9000\"\n",
        "data_dir = \"/srv/writ\"\n",
        "access_token_ttl = \"10m\"\n",
        "audit_token = \"from-the-file\"\n",
        "[kafka_properties]\n",
        "\"sasl.username\" = \"file\"\n",
        "\"acks\" = \"all\"\n",
    ));
    let overrides = Overrides {
        data_dir: Some("/override".into()),
        kafka_brokers: Some("127.0.0.1:9092".into()),
        kafka_properties: Some([("sasl.username".to_owned(), "flag".to_owned())].into()),
        ..Default::default()
    };
    let layers =
        FileConfig::layered(Some(config.path()), &overrides).unwrap_or_else(|e| panic!("{e}"));
    let settings = Settings::resolve(layers);
    assert_eq!(settings.listen.port(), 9000);
    assert_eq!(settings.data_dir, PathBuf::from("/override"));
    assert_eq!(settings.key_file, PathBuf::from("/override/keys"));
    assert_eq!(settings.issuer, "http://127.0.0.1:9000");
    assert_eq!(settings.access_token_ttl, Duration::from_secs(600));
    assert_eq!(
        settings.refresh_token_ttl,
        Duration::from_secs(30 * 24 * 3600)
    );
    assert_eq!(
        settings.audit_token.as_ref().map(|t| t.expose_secret()),
        Some("from-the-file")
    );
    let kafka = settings.kafka.unwrap_or_else(|| panic!("kafka"));
    let property = |name: &str| {
        kafka
            .properties
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(property("sasl.username").as_deref(), Some("flag"));
    assert_eq!(property("acks").as_deref(), Some("all"));
}

#[test]
fn secrets_never_print() {
    let overrides = Overrides {
        database_url: Some("postgres://writ:hunter2@db/writ".into()),
        registration_token: Some("registration-secret".into()),
        ..Default::default()
    };
    let layers = FileConfig::layered(None, &overrides).unwrap_or_else(|e| panic!("{e}"));
    let printed = format!("{:?}", Settings::resolve(layers));
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("registration-secret"), "{printed}");
    assert!(printed.contains("database_url"), "{printed}");
}

#[test]
fn unknown_keys_in_the_file_are_refused_naming_the_file() {
    let config = file("lisen = \"x\"");
    let refused = FileConfig::layered(Some(config.path()), &Overrides::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("lisen"), "{refused}");
    assert!(
        refused.contains(&config.path().display().to_string()),
        "{refused}"
    );
    assert!(!refused.contains('\n'), "{refused}");
}
