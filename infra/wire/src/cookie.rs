//! Cookies Writ set, read back strictly.

/// The value of cookie `name` among a request's `Cookie` header values:
/// the first pair so named, and only if it looks like a value Writ sets
/// (1 to 64 URL-safe characters). Anything else counts as absent.
pub fn value<'a>(header_values: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    header_values
        .into_iter()
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_strictly() {
        let header = ["a=1; writ_browser=abc_DEF-1; b=<script>"];
        assert_eq!(value(header, "writ_browser").as_deref(), Some("abc_DEF-1"));
        assert_eq!(value(header, "b"), None);
        assert_eq!(value(header, "missing"), None);
    }
}
