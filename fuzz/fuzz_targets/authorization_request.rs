//! The authorization request, as `/authorize`'s query or form and as a
//! pushed request's body (RFC 6749 §4.1.1, RFC 7636, RFC 9126): never a
//! panic; a request that passes names a registered redirect URI, only
//! scopes the client may have, an S256 challenge of the right shape, and
//! carries back the `state` it was sent.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use writ_wire::authorization::{
    oversized, validate, KnownClient, Origin, AUTHORIZATION_PARAMETERS,
};
use writ_wire::form::Form;

fn client(public: bool, native: bool) -> KnownClient {
    let settings = serde_json::from_value(json!({
        "name": "app",
        "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "profile", "email", "offline_access"],
        "public": public,
        "application_type": if native { "native" } else { "web" },
        "token_format": "jwt",
        "access_token_ttl_secs": 300,
        "refresh_token_ttl_secs": 3600,
        "audience": [],
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    KnownClient {
        client_id: "app".into(),
        settings,
        allowed_resources: Vec::new(),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(form) = Form::parse(bytes) else {
        return;
    };
    let _ = oversized(&form, AUTHORIZATION_PARAMETERS);
    let now = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .unwrap_or_default();
    for (public, native) in [(false, false), (true, true)] {
        let client = client(public, native);
        for origin in [
            Origin::Browser {
                par_required: false,
            },
            Origin::Pushed,
        ] {
            let Ok(pending) = validate(Some(&client), &form, "req", now, origin) else {
                continue;
            };
            let registered = &client.settings.redirect_uris;
            assert!(
                registered
                    .iter()
                    .any(|uri| uri.as_str() == pending.redirect_uri)
                    || (native && pending.redirect_uri.starts_with("http://127.0.0.1")),
                "{}",
                pending.redirect_uri
            );
            assert!(pending.scopes.is_subset(&client.settings.scopes));
            assert_eq!(pending.state.as_deref(), form.get("state"));
            if let Some(challenge) = &pending.code_challenge {
                assert_eq!(challenge.len(), 43);
            }
            assert!(pending.code_challenge.is_some() || !(public || origin == Origin::Pushed));
        }
    }
});
