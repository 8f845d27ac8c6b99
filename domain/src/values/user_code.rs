//! RFC 8628 §6.1: the code a person types on a second device. Twenty
//! consonants, so no vowel spells a word and no pair (0/O, 1/I) is
//! mistaken; eight of them are about 34 bits, which the verification
//! page's throttle and the code's short life make unguessable.

/// The letters a user code is made of.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const LENGTH: usize = 8;

/// A user code as typed: case, dashes and spaces do not matter (§6.1).
/// `None` when it cannot be a code Writ issued.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(code)
}

/// A code from `LENGTH` random bytes, each mapped onto the alphabet
/// without bias (values of 240 and above are drawn again by the caller's
/// source, which is why it takes a closure).
pub fn from_random(mut next_byte: impl FnMut() -> u8) -> String {
    let limit = (u8::MAX as usize + 1) / ALPHABET.len() * ALPHABET.len();
    (0..LENGTH)
        .map(|_| loop {
            let byte = next_byte() as usize;
            if byte < limit {
                break ALPHABET[byte % ALPHABET.len()] as char;
            }
        })
        .collect()
}

/// How a person reads it: two groups of four.
pub fn display(normalized: &str) -> String {
    let (head, tail) = normalized.split_at(normalized.len().min(LENGTH / 2));
    format!("{head}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_codes_ignore_case_dashes_and_spaces() {
        assert_eq!(normalize("bcdf-ghjk").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize(" BCDF GHJK ").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize("BCDFGHJK").as_deref(), Some("BCDFGHJK"));
    }

    #[test]
    fn what_no_code_can_be_is_refused() {
        assert_eq!(normalize("BCDF-GHJ"), None, "too short");
        assert_eq!(normalize("BCDF-GHJKL"), None, "too long");
        assert_eq!(
            normalize("ABCD-EFGH"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(
            normalize("BCDF-GHJ0"),
            None,
            "digits are not in the alphabet"
        );
        assert_eq!(normalize("BCDF-GHJÉ"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn random_codes_use_the_alphabet_and_skip_biased_bytes() {
        let mut bytes = [255u8, 240, 0, 1, 19, 20, 239, 7, 8, 9].into_iter();
        let code = from_random(|| bytes.next().unwrap_or(0));
        assert_eq!(code.len(), LENGTH);
        assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
        assert!(
            code.starts_with("BCZB"),
            "255 and 240 are drawn again: {code}"
        );
        assert_eq!(display(&code).len(), LENGTH + 1);
        assert_eq!(&display("BCDFGHJK"), "BCDF-GHJK");
    }
}
