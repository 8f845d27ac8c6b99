//! HTTP Basic client credentials for Writ's endpoints.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The `Authorization` value for a client id and secret. RFC 6749 §2.3.1:
/// each is `application/x-www-form-urlencoded` first, so a `:` in the id
/// or a `+` or `%` in the secret reaches Writ as written.
pub(crate) fn authorization(client_id: &str, client_secret: &str) -> String {
    let encode = |raw: &str| form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(client_secret));
    format!("Basic {}", STANDARD.encode(pair))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes the header the way RFC 6749 §2.3.1 tells the server to.
    fn decode(header: &str) -> (String, String) {
        let encoded = header
            .strip_prefix("Basic ")
            .unwrap_or_else(|| panic!("{header}"));
        let pair = String::from_utf8(STANDARD.decode(encoded).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let (id, secret) = pair.split_once(':').unwrap_or_else(|| panic!("{pair}"));
        let unescape = |part: &str| {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        (unescape(id), unescape(secret))
    }

    #[test]
    fn id_and_secret_are_form_encoded_before_base64() {
        let header = authorization("api:one", "a+b%20c:d é😀");
        let encoded = header.strip_prefix("Basic ").unwrap_or_default();
        let pair =
            String::from_utf8(STANDARD.decode(encoded).unwrap_or_default()).unwrap_or_default();
        assert_eq!(pair, "api%3Aone:a%2Bb%2520c%3Ad+%C3%A9%F0%9F%98%80");
        assert_eq!(
            decode(&header),
            ("api:one".to_owned(), "a+b%20c:d é😀".to_owned())
        );
    }

    #[test]
    fn plain_credentials_are_unchanged_by_the_encoding() {
        let header = authorization("api", "s3cret-_.*");
        assert_eq!(
            header,
            format!("Basic {}", STANDARD.encode("api:s3cret-_.*"))
        );
    }
}
