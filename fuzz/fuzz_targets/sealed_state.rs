//! Sealed browser state (a pending authorization request in a form or a
//! link, ADR 0012): never a panic; what a stranger makes up never opens;
//! what Writ sealed opens only under its own context, and not once a
//! byte of it is changed.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};
use writ_wire::sealed::{open, seal, Key};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input<'a> {
    forged: &'a str,
    plaintext: &'a [u8],
    context: &'a str,
    flip: usize,
}

fuzz_target!(|input: Input| {
    let key = Key([7; 32]);
    assert!(open(&key, input.context, input.forged).is_err());
    let sealed = seal(&key, input.context, input.plaintext);
    assert_eq!(
        open(&key, input.context, &sealed).as_deref(),
        Ok(input.plaintext)
    );
    assert!(open(&key, &format!("{}x", input.context), &sealed).is_err());
    let mut altered = sealed.into_bytes();
    let at = input.flip % altered.len();
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    if let Ok(altered) = String::from_utf8(altered) {
        assert!(open(&key, input.context, &altered).is_err());
    }
});
