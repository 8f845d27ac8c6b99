use cqrs_es::test::TestFramework;

use super::*;
use crate::services::fixtures::{services, t0};
use crate::values::{
    ApplicationType, GrantType, RedirectUri, ResourceUri, ScopeSet, SecretHash, TokenFormat,
};

type ClientTest = TestFramework<Client>;

fn settings() -> ClientSettings {
    ClientSettings {
        name: "web".into(),
        redirect_uris: vec![
            RedirectUri::parse("https://app.example/cb").unwrap_or_else(|e| panic!("{e}"))
        ],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: ScopeSet::parse("openid profile").unwrap_or_default(),
        public: false,
        application_type: ApplicationType::Web,
        token_format: TokenFormat::Jwt,
        access_token_ttl_secs: 300,
        refresh_token_ttl_secs: 86_400,
        audience: vec![],
        resources: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        id_token_signed_response_alg: None,
        revocation_feed: false,
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: false,
        fapi2_security_profile: false,
        token_endpoint_auth_method: None,
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
    }
}

fn secret() -> SecretHash {
    SecretHash("ab".repeat(32))
}

fn registered() -> ClientEvent {
    ClientEvent::ClientRegistered {
        client_id: "c1".into(),
        settings: settings(),
        secret_hash: Some(secret()),
        registered_at: t0(),
        registration_token_hash: None,
    }
}

fn disabled() -> ClientEvent {
    ClientEvent::ClientDisabled {
        reason: "r".into(),
        disabled_at: t0(),
    }
}

fn register(settings: ClientSettings, secret_hash: Option<SecretHash>) -> ClientCommand {
    ClientCommand::Register {
        client_id: "c1".into(),
        settings,
        secret_hash,
        registration_token_hash: None,
    }
}

#[test]
fn registering_a_confidential_client_records_its_settings_and_secret_hash() {
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(settings(), Some(secret())))
        .then_expect_events(vec![registered()]);
}

#[test]
fn registering_twice_is_refused() {
    ClientTest::with(services())
        .given(vec![registered()])
        .when(register(settings(), Some(secret())))
        .then_expect_error(ClientError::AlreadyRegistered);
}

#[test]
fn a_public_client_with_a_secret_is_refused() {
    let public = ClientSettings {
        public: true,
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(public, Some(secret())))
        .then_expect_error(ClientError::PublicClientHasNoSecret);
}

#[test]
fn a_confidential_client_without_a_secret_is_refused() {
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(settings(), None))
        .then_expect_error(ClientError::ConfidentialClientNeedsSecret);
}

#[test]
fn an_empty_name_is_refused() {
    let nameless = ClientSettings {
        name: " ".into(),
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(nameless, Some(secret())))
        .then_expect_error(ClientError::EmptyName);
}

#[test]
fn a_name_with_a_bidi_override_is_refused() {
    let spoofing = ClientSettings {
        name: "Example Bank\u{202E}moc.live".into(),
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(spoofing, Some(secret())))
        .then_expect_error(ClientError::UndisplayableName);
}

#[test]
fn a_client_without_grant_types_is_refused() {
    let none = ClientSettings {
        grant_types: vec![],
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(none, Some(secret())))
        .then_expect_error(ClientError::NoGrantTypes);
}

#[test]
fn the_code_grant_without_redirect_uris_is_refused() {
    let no_uris = ClientSettings {
        redirect_uris: vec![],
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(no_uris, Some(secret())))
        .then_expect_error(ClientError::RedirectUriRequired);
}

#[test]
fn a_public_client_cannot_use_client_credentials() {
    let public_cc = ClientSettings {
        public: true,
        grant_types: vec![GrantType::ClientCredentials],
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(public_cc, None))
        .then_expect_error(ClientError::PublicClientCredentials);
}

#[test]
fn zero_lifetimes_are_refused() {
    let zero = ClientSettings {
        access_token_ttl_secs: 0,
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(zero, Some(secret())))
        .then_expect_error(ClientError::ZeroLifetime);
}

#[test]
fn rotating_the_secret_records_the_new_hash() {
    let new = SecretHash("cd".repeat(32));
    ClientTest::with(services())
        .given(vec![registered()])
        .when(ClientCommand::RotateSecret {
            secret_hash: new.clone(),
        })
        .then_expect_events(vec![ClientEvent::ClientSecretRotated {
            secret_hash: new,
            rotated_at: t0(),
        }]);
}

#[test]
fn rotating_the_secret_of_an_unknown_client_is_refused() {
    ClientTest::with(services())
        .given_no_previous_events()
        .when(ClientCommand::RotateSecret {
            secret_hash: secret(),
        })
        .then_expect_error(ClientError::NotFound);
}

#[test]
fn a_public_client_has_no_secret_to_rotate() {
    let public = ClientEvent::ClientRegistered {
        client_id: "c1".into(),
        settings: ClientSettings {
            public: true,
            ..settings()
        },
        secret_hash: None,
        registered_at: t0(),
        registration_token_hash: None,
    };
    ClientTest::with(services())
        .given(vec![public])
        .when(ClientCommand::RotateSecret {
            secret_hash: secret(),
        })
        .then_expect_error(ClientError::PublicClientHasNoSecret);
}

#[test]
fn changing_settings_records_them() {
    let renamed = ClientSettings {
        name: "renamed".into(),
        ..settings()
    };
    ClientTest::with(services())
        .given(vec![registered()])
        .when(ClientCommand::ChangeSettings {
            settings: renamed.clone(),
        })
        .then_expect_events(vec![ClientEvent::ClientSettingsChanged {
            settings: renamed,
            changed_at: t0(),
        }]);
}

#[test]
fn a_confidential_client_cannot_become_public() {
    let public = ClientSettings {
        public: true,
        ..settings()
    };
    ClientTest::with(services())
        .given(vec![registered()])
        .when(ClientCommand::ChangeSettings { settings: public })
        .then_expect_error(ClientError::AuthenticationKindChanged);
}

fn keyed() -> ClientSettings {
    ClientSettings {
        token_endpoint_auth_method: Some(crate::client::AuthMethod::PrivateKeyJwt),
        jwks: Some(
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]}),
        ),
        ..settings()
    }
}

#[test]
fn a_keys_client_has_no_secret_and_never_becomes_public_or_a_secret_one() {
    let keyed_registered = ClientEvent::ClientRegistered {
        client_id: "c1".into(),
        settings: keyed(),
        secret_hash: None,
        registered_at: t0(),
        registration_token_hash: None,
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(keyed(), Some(secret())))
        .then_expect_error(ClientError::KeysRequired);
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(keyed(), None))
        .then_expect_events(vec![keyed_registered.clone()]);
    for (settings, error) in [
        (
            ClientSettings {
                public: true,
                token_endpoint_auth_method: Some(crate::client::AuthMethod::None),
                jwks: None,
                grant_types: vec![crate::values::GrantType::AuthorizationCode],
                ..keyed()
            },
            ClientError::AuthenticationKindChanged,
        ),
        (
            ClientSettings {
                token_endpoint_auth_method: None,
                jwks: None,
                ..keyed()
            },
            ClientError::ConfidentialClientNeedsSecret,
        ),
        (
            ClientSettings {
                revocation_feed: true,
                ..keyed()
            },
            ClientError::RevocationFeedNeedsSecret,
        ),
        (
            ClientSettings {
                jwks: None,
                ..keyed()
            },
            ClientError::KeysRequired,
        ),
    ] {
        ClientTest::with(services())
            .given(vec![keyed_registered.clone()])
            .when(ClientCommand::ChangeSettings { settings })
            .then_expect_error(error);
    }
}

#[test]
fn a_disabled_client_cannot_be_changed() {
    ClientTest::with(services())
        .given(vec![registered(), disabled()])
        .when(ClientCommand::ChangeSettings {
            settings: settings(),
        })
        .then_expect_error(ClientError::Disabled);
}

#[test]
fn disabling_records_the_reason() {
    ClientTest::with(services())
        .given(vec![registered()])
        .when(ClientCommand::Disable { reason: "r".into() })
        .then_expect_events(vec![disabled()]);
}

#[test]
fn disabling_twice_is_refused() {
    ClientTest::with(services())
        .given(vec![registered(), disabled()])
        .when(ClientCommand::Disable {
            reason: "again".into(),
        })
        .then_expect_error(ClientError::Disabled);
}

#[test]
fn settings_recorded_before_the_revocation_feed_setting_decode_without_it() {
    let mut recorded = serde_json::to_value(settings()).unwrap_or_else(|e| panic!("{e}"));
    recorded
        .as_object_mut()
        .map(|fields| fields.remove("revocation_feed"));
    let decoded: ClientSettings =
        serde_json::from_value(recorded).unwrap_or_else(|e| panic!("{e}"));
    assert!(!decoded.revocation_feed);
    assert_eq!(decoded, settings());
}

#[test]
fn a_public_client_cannot_answer_for_resources() {
    let public = ClientSettings {
        public: true,
        resources: vec![
            ResourceUri::parse("https://api.example/").unwrap_or_else(|e| panic!("{e}"))
        ],
        ..settings()
    };
    ClientTest::with(services())
        .given_no_previous_events()
        .when(register(public, None))
        .then_expect_error(ClientError::PublicResourceServer);
}

/// Events written before `resources` existed still decode, with none.
#[test]
fn settings_recorded_before_resources_existed_still_decode() {
    // What Writ wrote before `resources` and `revocation_feed` existed, in
    // its field order (a clients row of the 3b5fd0e fixture).
    let old = concat!(
        r#"{"name":"app","redirect_uris":[],"grant_types":["client_credentials"],"#,
        r#""scopes":[],"public":false,"application_type":"web","token_format":"jwt","#,
        r#""access_token_ttl_secs":300,"refresh_token_ttl_secs":2592000,"audience":[],"#,
        r#""post_logout_redirect_uris":[],"id_token_signed_response_alg":null}"#
    );
    let decoded: ClientSettings = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
    assert!(decoded.resources.is_empty() && !decoded.revocation_feed);
    // Written again, they read exactly as before: the rebuild compares the
    // settings column as text, so an old database verifies after upgrade.
    assert_eq!(serde_json::to_string(&decoded).unwrap_or_default(), old);
    let with = ClientSettings {
        resources: vec![
            ResourceUri::parse("https://api.example/").unwrap_or_else(|e| panic!("{e}"))
        ],
        ..settings()
    };
    let json = serde_json::to_value(&with).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json["resources"],
        serde_json::json!(["https://api.example/"])
    );
}

#[test]
fn a_registration_token_is_rotated_only_by_its_current_holder() {
    let with_token = ClientEvent::ClientRegistered {
        client_id: "c1".into(),
        settings: settings(),
        secret_hash: Some(secret()),
        registered_at: t0(),
        registration_token_hash: Some(SecretHash("a".repeat(64))),
    };
    let rotate = |presented: &str, next: &str| ClientCommand::RotateRegistrationToken {
        presented: SecretHash(presented.repeat(64)),
        next: SecretHash(next.repeat(64)),
    };
    ClientTest::with(services())
        .given(vec![with_token.clone()])
        .when(rotate("a", "b"))
        .then_expect_events(vec![ClientEvent::RegistrationTokenRotated {
            token_hash: SecretHash("b".repeat(64)),
            rotated_at: t0(),
        }]);
    ClientTest::with(services())
        .given(vec![
            with_token.clone(),
            ClientEvent::RegistrationTokenRotated {
                token_hash: SecretHash("b".repeat(64)),
                rotated_at: t0(),
            },
        ])
        .when(rotate("a", "c"))
        .then_expect_error(ClientError::RegistrationTokenSuperseded);
    ClientTest::with(services())
        .given(vec![with_token, disabled()])
        .when(rotate("a", "b"))
        .then_expect_error(ClientError::Disabled);
}

#[test]
fn the_fapi2_profile_holds_only_with_everything_it_implies() {
    let fapi = ClientSettings {
        fapi2_security_profile: true,
        require_pushed_authorization_requests: true,
        dpop_bound_access_tokens: true,
        id_token_signed_response_alg: Some(crate::values::IdTokenAlg::ES256),
        ..keyed()
    };
    let accepted = ClientTest::with(services())
        .given_no_previous_events()
        .when(register(fapi.clone(), None))
        .inspect_result();
    assert!(accepted.is_ok(), "{accepted:?}");
    let with_secret = ClientSettings {
        token_endpoint_auth_method: None,
        jwks: None,
        ..fapi.clone()
    };
    let without_par = ClientSettings {
        require_pushed_authorization_requests: false,
        ..fapi.clone()
    };
    let without_dpop = ClientSettings {
        dpop_bound_access_tokens: false,
        ..fapi.clone()
    };
    let with_rs256 = ClientSettings {
        id_token_signed_response_alg: None,
        ..fapi.clone()
    };
    let with_password = ClientSettings {
        grant_types: vec![GrantType::AuthorizationCode, GrantType::Password],
        ..fapi
    };
    for (settings, secret) in [
        (with_secret, Some(secret())),
        (without_par, None),
        (without_dpop, None),
        (with_rs256, None),
        (with_password, None),
    ] {
        ClientTest::with(services())
            .given_no_previous_events()
            .when(register(settings, secret))
            .then_expect_error(ClientError::Fapi2Profile);
    }
}
