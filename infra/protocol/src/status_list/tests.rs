use super::*;

fn list(bits: u8, lst: &str) -> StatusList {
    StatusList::decode(&EncodedList {
        bits,
        lst: lst.to_owned(),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_drafts_one_bit_example_decodes_to_its_statuses() {
    // §4.1's example: 16 statuses in two bytes, 0xB9 0xA3.
    let decoded = list(1, "eNrbuRgAAhcBXQ");
    let expected = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
    for (idx, status) in expected.into_iter().enumerate() {
        assert_eq!(decoded.get(idx as u64), Some(status), "index {idx}");
    }
    assert_eq!(decoded.len(), 16);
    assert_eq!(decoded.get(16), None);
}

#[test]
fn set_bits_read_back_and_survive_encoding() {
    for bits in [1, 2, 4, 8] {
        let mut statuses = StatusList::new(bits, 1000).unwrap_or_else(|e| panic!("{e}"));
        let max = ((1u16 << bits) - 1) as u8;
        for idx in (0..1000).step_by(7) {
            assert!(statuses.set(idx, (idx as u8) & max));
        }
        assert!(!statuses.set(statuses.len(), 1));
        let decoded = StatusList::decode(&statuses.encode()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, statuses);
        assert_eq!(decoded.get(7), Some(7 & max));
        assert_eq!(decoded.get(8), Some(VALID));
    }
}

#[test]
fn a_list_that_inflates_past_the_limit_is_refused() {
    let huge = vec![0u8; MAX_DECODED_BYTES + 1];
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
    zlib.write_all(&huge).unwrap_or_else(|e| panic!("{e}"));
    let lst = URL_SAFE_NO_PAD.encode(zlib.finish().unwrap_or_else(|e| panic!("{e}")));
    let refused = StatusList::decode(&EncodedList { bits: 1, lst });
    assert_eq!(refused, Err(ListError::Inflate));
}

#[test]
fn bad_bits_and_bad_encodings_are_errors_not_panics() {
    assert_eq!(StatusList::new(3, 8), Err(ListError::Bits));
    let bad = |bits: u8, lst: &str| {
        StatusList::decode(&EncodedList {
            bits,
            lst: lst.to_owned(),
        })
    };
    assert_eq!(bad(1, "!!"), Err(ListError::Base64));
    assert_eq!(bad(1, "AAAA"), Err(ListError::Inflate));
    assert_eq!(bad(0, "eNrbuRgAAhcBXQ"), Err(ListError::Bits));
}

#[test]
fn the_drafts_two_bit_example_decodes_to_its_statuses() {
    let decoded = list(2, "eNo76fITAAPfAgc");
    let expected = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    for (idx, status) in expected.into_iter().enumerate() {
        assert_eq!(decoded.get(idx as u64), Some(status), "index {idx}");
    }
}

#[test]
fn the_drafts_appendix_c_lists_decode_to_their_statuses() {
    for vector in super::vectors::APPENDIX_C {
        let decoded = list(vector.bits, vector.lst);
        assert_eq!(decoded.len(), 1 << 20, "{} bits", vector.bits);
        let mut expected = StatusList::new(vector.bits, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        for &(idx, status) in vector.statuses {
            assert_eq!(
                decoded.get(idx),
                Some(status),
                "{} bits, index {idx}",
                vector.bits
            );
            expected.set(idx, status);
        }
        // Nothing else is set: every unlisted index is VALID.
        assert_eq!(decoded, expected, "{} bits", vector.bits);
        // And this encoder's own output decodes to the same list.
        assert_eq!(StatusList::decode(&expected.encode()), Ok(expected));
    }
}
