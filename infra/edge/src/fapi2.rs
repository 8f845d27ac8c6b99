//! FAPI 2.0 §5.4.1: no RSASSA-PKCS1-v1_5. The one rule for every JWT a
//! client signs (DPoP proofs, client assertions, request objects) and for
//! what discovery advertises under `serve --fapi2`.

/// What a FAPI 2.0 client may sign with.
pub const ALGORITHMS: &[&str] = &["ES256", "EdDSA", "PS256"];

/// Whether a JWT signed with `alg` is admitted, FAPI 2.0 applying or not.
pub fn admits(alg: &str, fapi2: bool) -> bool {
    !fapi2 || ALGORITHMS.contains(&alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fapi2_admits_no_rs256() {
        assert!(admits("RS256", false));
        assert!(!admits("RS256", true));
        for alg in ["ES256", "EdDSA", "PS256"] {
            assert!(admits(alg, true), "{alg}");
        }
    }
}
