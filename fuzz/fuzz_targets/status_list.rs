//! A token status list's `bits` and `lst` (draft-ietf-oauth-status-list
//! §4): never a panic, never more than the decoder's limit in memory, and
//! a list that decodes encodes to one that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use writ_protocol::status_list::{EncodedList, StatusList, MAX_DECODED_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((bits, lst)) = data.split_first() else {
        return;
    };
    let Ok(lst) = std::str::from_utf8(lst) else {
        return;
    };
    let encoded = EncodedList {
        bits: *bits,
        lst: lst.to_owned(),
    };
    if let Ok(list) = StatusList::decode(&encoded) {
        assert!(list.len() <= (MAX_DECODED_BYTES as u64) * 8);
        assert_eq!(StatusList::decode(&list.encode()), Ok(list.clone()));
        let _ = list.get(list.len());
    }
});
