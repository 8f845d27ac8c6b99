//! Strict `application/x-www-form-urlencoded` bodies for the OAuth
//! endpoints: size-capped, duplicates refused (RFC 6749 §3.2), unknown
//! parameters ignored.

use std::collections::HashMap;

use crate::Invalid;

/// Far above any legitimate query string; a megabyte parameter answers
/// 400 at once instead of being parsed (R63). Bodies have their own cap.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Parameters that RFC 8707 lets a request repeat.
const REPEATABLE: &[&str] = &["resource"];

#[derive(Debug, Default)]
pub struct Form {
    single: HashMap<String, String>,
    repeated: HashMap<String, Vec<String>>,
}

impl Form {
    pub fn parse(bytes: &[u8]) -> Result<Self, Invalid> {
        let mut form = Self::default();
        for (name, value) in form_urlencoded::parse(bytes) {
            if REPEATABLE.contains(&name.as_ref()) {
                form.repeated
                    .entry(name.into_owned())
                    .or_default()
                    .push(value.into_owned());
                continue;
            }
            if form
                .single
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(Invalid::request(format!(
                    "parameter {name} is given more than once"
                )));
            }
        }
        Ok(form)
    }

    /// A form made from parameters Writ holds (a pushed request, a request
    /// object's claims), read by the same rules as a request's body.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Invalid> {
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        encoded.extend_pairs(pairs);
        Self::parse(encoded.finish().as_bytes())
    }

    /// A parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.single
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, Invalid> {
        self.get(name)
            .ok_or_else(|| Invalid::request(format!("parameter {name} is missing")))
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.repeated.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_except_resource() {
        assert!(Form::parse(b"a=1&a=2").is_err());
        let form = Form::parse(b"resource=x&resource=y&scope=").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(form.all("resource"), ["x", "y"]);
        assert_eq!(form.get("scope"), None);
    }

    #[test]
    fn values_are_percent_and_plus_decoded() {
        let form = Form::parse(b"scope=a+b%20c").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(form.get("scope"), Some("a b c"));
    }
}
