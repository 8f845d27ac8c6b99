//! Client credentials in an `Authorization: Basic` header (RFC 6749
//! §2.3.1).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::Invalid;

/// The client id and secret of a Basic header: each form-urlencoded, then
/// joined by a colon and base64-encoded. Anything else is refused, not
/// guessed at.
pub fn basic(value: &str) -> Result<(String, String), Invalid> {
    let bad = || Invalid::client("malformed Basic credentials");
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(bad)?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |part: &str| -> Result<String, Invalid> {
        let bytes: Vec<u8> = form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
        String::from_utf8(bytes).map_err(|_| bad())
    };
    let (id, secret) = (unescape(id)?, unescape(secret)?);
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn basic_credentials_are_parsed_strictly() {
        assert_eq!(
            basic(&encoded("id:s%3Acret")).ok(),
            Some(("id".to_owned(), "s:cret".to_owned()))
        );
        assert!(basic("Basic !!!").is_err(), "bad base64");
        assert!(basic(&encoded("no-colon")).is_err());
        assert!(basic(&encoded(":secret")).is_err(), "empty id");
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'x']));
        assert!(basic(&not_utf8).is_err());
        assert!(basic("Bearer abc").is_err());
    }
}
