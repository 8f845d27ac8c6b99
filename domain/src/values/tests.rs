use super::*;

#[test]
fn https_and_loopback_redirect_uris_are_accepted() {
    for ok in [
        "https://app.example/cb",
        "https://app.example:8443/cb?x=1",
        "http://127.0.0.1:9999/cb",
        "http://[::1]/cb",
        "http://localhost:3000/cb",
        "com.example.app:/oauth",
    ] {
        assert!(RedirectUri::parse(ok).is_ok(), "{ok} should parse");
    }
}

#[test]
fn dangerous_redirect_uris_are_refused() {
    for bad in [
        "",
        "https://app.example/cb#frag",
        "javascript:alert(1)",
        "JavaScript://x/%0aalert(1)",
        "data:text/html,hi",
        "vbscript:msgbox",
        "http://app.example/cb",
        "http://127.0.0.1@evil.example/cb",
        "http://localhost:80@evil.example",
        "https://evil.com\\@host/cb",
        "/relative/cb",
        "https:///nohost",
        "http://127.0.0.1:99999999/cb",
        "https://app.example/c b",
        "about:blank",
    ] {
        assert!(RedirectUri::parse(bad).is_err(), "{bad} should be refused");
    }
}

#[test]
fn loopback_is_recognised_only_for_plain_http_loopback_hosts() {
    assert!(RedirectUri::parse("http://127.0.0.1:1/x")
        .map(|u| u.is_loopback())
        .unwrap_or(false));
    assert!(!RedirectUri::parse("https://127.0.0.1/x")
        .map(|u| u.is_loopback())
        .unwrap_or(true));
}

#[test]
fn scopes_parse_sorted_and_refuse_quotes_and_backslashes() {
    let scopes = ScopeSet::parse("profile openid  email").expect("valid scopes");
    assert_eq!(scopes.to_string(), "email openid profile");
    assert!(ScopeSet::parse("a\"b").is_err());
    assert!(ScopeSet::parse("a\\b").is_err());
    assert!(ScopeSet::parse("caf\u{e9}").is_err());
}

#[test]
fn s256_challenge_matches_rfc7636_appendix_b() {
    let challenge = CodeChallenge::parse_s256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        .expect("appendix B challenge");
    assert!(challenge.is_satisfied_by("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
    assert!(!challenge.is_satisfied_by("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    assert!(!challenge.is_satisfied_by("short"));
}

#[test]
fn malformed_challenges_are_refused() {
    assert!(CodeChallenge::parse_s256("too-short").is_err());
    assert!(CodeChallenge::parse_s256(&"+".repeat(43)).is_err());
}

#[test]
fn resource_uris_are_absolute_without_a_fragment() {
    for ok in [
        "https://api.example/",
        "https://api.example:8443/v1?tenant=a",
        "urn:example:api",
    ] {
        assert_eq!(
            ResourceUri::parse(ok).map(|r| r.as_str().to_owned()),
            Ok(ok.to_owned()),
            "{ok} should parse"
        );
    }
    for bad in [
        "",
        "https://api.example/#top",
        "/relative",
        "api.example",
        "https:",
        "1https://api.example/",
        "https://api.example/ x",
        "https://api.example/\n",
    ] {
        assert!(
            matches!(ResourceUri::parse(bad), Err(ValueError::ResourceUri(..))),
            "{bad:?} should be refused"
        );
    }
    assert!(ResourceUri::parse(&format!("https://a.example/{}", "x".repeat(2000))).is_err());
}
