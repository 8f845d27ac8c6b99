//! A strict form body or query (RFC 6749 §3.1, §3.2): never a panic; it
//! parses exactly when no parameter but `resource` repeats, and then
//! every parameter reads back as sent.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use writ_wire::form::Form;

fuzz_target!(|bytes: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(bytes)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut seen = HashSet::new();
    let repeats = pairs
        .iter()
        .any(|(name, _)| name != "resource" && !seen.insert(name.as_str()));
    match Form::parse(bytes) {
        Err(_) => assert!(repeats, "refused a form without a repeated parameter"),
        Ok(form) => {
            assert!(!repeats, "accepted a repeated parameter");
            for (name, value) in &pairs {
                if name == "resource" {
                    assert!(form.all("resource").contains(value));
                } else {
                    let expected = (!value.is_empty()).then_some(value.as_str());
                    assert_eq!(form.get(name), expected);
                }
            }
        }
    }
});
