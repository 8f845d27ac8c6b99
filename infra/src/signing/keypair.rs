//! Key pairs for JWS: generation, the public JWK (written through
//! `jsonwebtoken`'s JWK types, named by its RFC 7638 thumbprint) and
//! signing (ring, with the key pair parsed once: ADR 0024).
//! ring signs ES256 and EdDSA fast; it cannot generate RSA keys, so RS256
//! keys (for id_tokens, where OpenID Connect expects them) come from the
//! `rsa` crate and are then used through ring.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported signing algorithm {0:?}; use ES256, EdDSA or RS256")]
    UnsupportedAlg(String),
    #[error("key generation failed")]
    Generation,
    #[error("the stored private key does not load: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Signing,
}

pub const ALGS: &[&str] = &["ES256", "EdDSA", "RS256"];

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

/// A private key ready to sign, with its id and algorithm.
pub struct Signer {
    pub kid: String,
    pub alg: &'static str,
    pair: Pair,
    rng: SystemRandom,
}

/// A new key pair: its PKCS#8 private half (to be sealed) and public JWK.
pub struct Generated {
    pub kid: String,
    pub alg: &'static str,
    pub pkcs8: Vec<u8>,
    pub public_jwk: Value,
}

fn canonical_alg(alg: &str) -> Result<&'static str, KeyError> {
    ALGS.iter()
        .copied()
        .find(|known| *known == alg)
        .ok_or_else(|| KeyError::UnsupportedAlg(alg.to_owned()))
}

pub fn generate(alg: &str) -> Result<Generated, KeyError> {
    let alg = canonical_alg(alg)?;
    let rng = SystemRandom::new();
    let pkcs8 = match alg {
        "ES256" => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Generation)?
            .as_ref()
            .to_vec(),
        "EdDSA" => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Generation)?
            .as_ref()
            .to_vec(),
        _ => rsa_pkcs8()?,
    };
    let signer = Signer::from_pkcs8("", alg, &pkcs8)?;
    let parameters = signer.public_parameters();
    let kid = thumbprint(&serde_json::to_value(&parameters).map_err(|_| KeyError::Generation)?);
    let jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(match alg {
                "ES256" => KeyAlgorithm::ES256,
                "EdDSA" => KeyAlgorithm::EdDSA,
                _ => KeyAlgorithm::RS256,
            }),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        },
        algorithm: parameters,
    };
    let public_jwk = serde_json::to_value(&jwk).map_err(|_| KeyError::Generation)?;
    Ok(Generated {
        kid,
        alg,
        pkcs8,
        public_jwk,
    })
}

fn rsa_pkcs8() -> Result<Vec<u8>, KeyError> {
    use rsa::pkcs8::EncodePrivateKey;
    let key =
        rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|_| KeyError::Generation)?;
    let der = key.to_pkcs8_der().map_err(|_| KeyError::Generation)?;
    Ok(der.as_bytes().to_vec())
}

/// RFC 7638 thumbprint: the key id is a function of the public key.
fn thumbprint(public: &Value) -> String {
    let required: &[&str] = match public["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => &["e", "kty", "n"],
    };
    let members: Vec<String> = required
        .iter()
        .map(|name| format!("\"{name}\":{}", public[*name]))
        .collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{}}}", members.join(","))))
}

impl Signer {
    pub fn from_pkcs8(kid: &str, alg: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let alg = canonical_alg(alg)?;
        let rng = SystemRandom::new();
        let rejected = |e: ring::error::KeyRejected| KeyError::Rejected(e.to_string());
        let pair = match alg {
            "ES256" => Pair::Es256(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(rejected)?,
            ),
            "EdDSA" => Pair::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?),
            _ => Pair::Rs256(RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?),
        };
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            pair,
            rng,
        })
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Es256(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Pair::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rs256(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut out)
                    .map_err(|_| KeyError::Signing)?;
                Ok(out)
            }
        }
    }

    /// The public key as JWK parameters (RFC 7518 §6): the members a
    /// thumbprint covers.
    fn public_parameters(&self) -> AlgorithmParameters {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match &self.pair {
            Pair::Es256(pair) => {
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(&point[1..33]),
                    y: b64(&point[33..65]),
                })
            }
            Pair::EdDsa(pair) => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: b64(pair.public_key().as_ref()),
            }),
            Pair::Rs256(pair) => {
                let components = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: b64(&components.n),
                    e: b64(&components.e),
                })
            }
        }
    }
}

/// Verification lives with the protocol, where resource servers use it too.
pub use writ_protocol::jose::verify_signature as verify;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_algorithm_signs_and_verifies_with_its_published_key() {
        for alg in ALGS {
            let generated = generate(alg).unwrap_or_else(|e| panic!("{e}"));
            let signer = Signer::from_pkcs8(&generated.kid, alg, &generated.pkcs8)
                .unwrap_or_else(|e| panic!("{e}"));
            let sig = signer.sign(b"message").unwrap_or_else(|e| panic!("{e}"));
            assert!(
                verify(&generated.public_jwk, alg, b"message", &sig),
                "{alg}"
            );
            assert!(!verify(&generated.public_jwk, alg, b"other", &sig), "{alg}");
            assert_eq!(generated.public_jwk["kid"], json!(generated.kid));
            // The members Writ has always published, and no others.
            let mut members: Vec<&str> = generated
                .public_jwk
                .as_object()
                .map(|jwk| jwk.keys().map(String::as_str).collect())
                .unwrap_or_default();
            members.sort_unstable();
            let expected: &[&str] = match *alg {
                "ES256" => &["alg", "crv", "kid", "kty", "use", "x", "y"],
                "EdDSA" => &["alg", "crv", "kid", "kty", "use", "x"],
                _ => &["alg", "e", "kid", "kty", "n", "use"],
            };
            assert_eq!(members, expected, "{alg}");
            assert_eq!(generated.public_jwk["alg"], json!(alg));
            assert_eq!(generated.public_jwk["use"], json!("sig"));
        }
    }

    #[test]
    fn a_signature_never_verifies_under_another_algorithm() {
        let es = generate("ES256").unwrap_or_else(|e| panic!("{e}"));
        let signer =
            Signer::from_pkcs8(&es.kid, "ES256", &es.pkcs8).unwrap_or_else(|e| panic!("{e}"));
        let sig = signer.sign(b"m").unwrap_or_else(|e| panic!("{e}"));
        assert!(!verify(&es.public_jwk, "EdDSA", b"m", &sig));
        assert!(!verify(&es.public_jwk, "none", b"m", &sig));
    }
}
