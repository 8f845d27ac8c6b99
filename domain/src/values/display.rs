//! Text a person will read on Writ's pages or in the CLI. Format
//! characters (Unicode category Cf) are invisible and can reorder what is
//! shown: U+202E (right-to-left override) placed inside a name makes the
//! rest of it read backwards, so one name can pass for another. Control
//! characters and line or paragraph separators break the page's and the
//! terminal's layout. None of them has a place in a client's name or
//! address.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `text` holds no control, format or separator-of-lines
/// character.
pub fn displayable(text: &str) -> bool {
    !text.chars().any(|c| {
        matches!(
            c.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
    })
}

#[cfg(test)]
mod tests {
    use super::displayable;

    #[test]
    fn bidi_overrides_and_other_invisible_characters_are_not_displayable() {
        assert!(displayable("Example Bank — Konto ÄÖÜ 銀行"));
        for hidden in [
            '\u{202E}',
            '\u{200B}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            assert!(!displayable(&format!("Bank{hidden}x")), "{hidden:?}");
        }
        assert!(!displayable("two\u{2028}lines"));
        assert!(!displayable("bell\u{7}"));
    }
}
