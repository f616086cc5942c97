//! Signing and verifying keys.
//!
//! Keys are parsed exactly once (at start-up, on rotation or on JWKS fetch)
//! into aws-lc-rs key objects; the request path only signs or verifies.
//! Only asymmetric algorithms exist here: there is no HMAC and no `none`, so
//! alg-confusion attacks have nothing to confuse.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::jwk::Jwk;

/// Errors building or using keys. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported algorithm {0:?} (supported: RS256, ES256, EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error("unsupported key type (supported: RSA ≥ 2048 bits, EC P-256, OKP Ed25519)")]
    UnsupportedKeyType,
    #[error("JWK is missing member `{0}`")]
    MissingMember(&'static str),
    #[error("JWK contains private key material")]
    PrivateMaterial,
    #[error("JWK `alg` {0:?} does not match the key type")]
    AlgMismatch(String),
    #[error("key is malformed")]
    Malformed,
    #[error("PEM is malformed or has an unexpected label")]
    BadPem,
    #[error("RSA keys must be at least 2048 bits")]
    RsaTooSmall,
    #[error("key generation failed")]
    Generate,
    #[error("signing failed")]
    Sign,
}

/// The JWS algorithms we sign and verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    ES256,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;
    /// Exact, case-sensitive JWS names: `none`, `HS256` and friends are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(KeyError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its public JWK and `kid` (RFC 7638 thumbprint).
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    signer: Signer,
    jwk: Jwk,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_decode(s: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| KeyError::Malformed)
}

impl SigningKey {
    /// Generates a fresh key (RSA 2048, P-256 or Ed25519).
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let signer = match alg {
            Algorithm::RS256 => {
                Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?)
            }
            Algorithm::ES256 => Signer::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate)?,
            ),
            Algorithm::EdDSA => {
                Signer::Ed(Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?)
            }
        };
        Self::from_signer(signer)
    }

    /// Loads a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM; the
    /// algorithm follows from the key type.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text).map_err(|_| KeyError::BadPem)?;
        let der = block.contents();
        let signer = match block.tag() {
            "PRIVATE KEY" => {
                if let Ok(k) = Ed25519KeyPair::from_pkcs8(der) {
                    Signer::Ed(k)
                } else if let Ok(k) =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                {
                    Signer::Ec(k)
                } else {
                    Signer::Rsa(
                        RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::UnsupportedKeyType)?,
                    )
                }
            }
            "RSA PRIVATE KEY" => {
                Signer::Rsa(RsaKeyPair::from_der(der).map_err(|_| KeyError::Malformed)?)
            }
            _ => return Err(KeyError::BadPem),
        };
        Self::from_signer(signer)
    }

    fn from_signer(signer: Signer) -> Result<Self, KeyError> {
        let (alg, mut jwk) = match &signer {
            Signer::Rsa(k) => {
                if k.public_modulus_len() < 256 {
                    return Err(KeyError::RsaTooSmall);
                }
                let public = k.public_key();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    n: Some(b64(public.modulus().big_endian_without_leading_zero())),
                    e: Some(b64(public.exponent().big_endian_without_leading_zero())),
                    ..empty_jwk()
                };
                (Algorithm::RS256, jwk)
            }
            Signer::Ec(k) => {
                // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
                let point = k.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(KeyError::Malformed);
                }
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64(&point[1..33])),
                    y: Some(b64(&point[33..65])),
                    ..empty_jwk()
                };
                (Algorithm::ES256, jwk)
            }
            Signer::Ed(k) => {
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64(k.public_key().as_ref())),
                    ..empty_jwk()
                };
                (Algorithm::EdDSA, jwk)
            }
        };
        let kid = jwk.thumbprint()?;
        jwk.kid = Some(kid.clone());
        jwk.alg = Some(alg.as_str().into());
        jwk.use_ = Some("sig".into());
        Ok(Self {
            alg,
            kid,
            signer,
            jwk,
            rng: SystemRandom::new(),
        })
    }

    /// PKCS#8 PEM of the private key (for writing to the keys folder).
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let der = match &self.signer {
            Signer::Rsa(k) => {
                let doc: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    k.as_der().map_err(|_| KeyError::Malformed)?;
                doc.as_ref().to_vec()
            }
            Signer::Ec(k) => k
                .to_pkcs8v1()
                .map_err(|_| KeyError::Malformed)?
                .as_ref()
                .to_vec(),
            Signer::Ed(k) => k
                .to_pkcs8v1()
                .map_err(|_| KeyError::Malformed)?
                .as_ref()
                .to_vec(),
        };
        Ok(to_pem("PRIVATE KEY", &der))
    }

    /// SubjectPublicKeyInfo PEM (`PUBLIC KEY`) of the public half, e.g. to
    /// register a private_key_jwt client.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'static> = match &self.signer {
            Signer::Rsa(k) => k.public_key().as_der(),
            Signer::Ec(k) => k.public_key().as_der(),
            Signer::Ed(k) => k.public_key().as_der(),
        }
        .map_err(|_| KeyError::Malformed)?;
        Ok(to_pem("PUBLIC KEY", der.as_ref()))
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (`kid`, `alg`, `use: sig` set).
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A verifying key for our own public key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_jwk(&self.jwk)
    }

    /// Signs `msg` with the key's JWS algorithm.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Signer::Ec(k) => Ok(k
                .sign(&self.rng, msg)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec()),
            Signer::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

fn empty_jwk() -> Jwk {
    Jwk {
        kty: String::new(),
        use_: None,
        alg: None,
        kid: None,
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
        d: None,
    }
}

/// A pre-parsed public key bound to exactly one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    kid: Option<String>,
    key: ParsedPublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl VerifyingKey {
    /// Builds a key from a public JWK. The algorithm follows from the key
    /// type; a JWK `alg` that disagrees (e.g. `HS256` on an RSA key) is refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.d.is_some() {
            return Err(KeyError::PrivateMaterial);
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::UnsupportedKeyType);
        }
        let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => {
                let n = b64_decode(member(&jwk.n, "n")?)?;
                let e = b64_decode(member(&jwk.e, "e")?)?;
                let n_trim = trim_leading_zeros(&n);
                if n_trim.len() < 256 {
                    return Err(KeyError::RsaTooSmall);
                }
                let comps = PublicKeyComponents {
                    n: n_trim,
                    e: trim_leading_zeros(&e),
                };
                let key = comps
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(|_| KeyError::Malformed)?;
                (Algorithm::RS256, key)
            }
            ("EC", Some("P-256")) => {
                let x = b64_decode(member(&jwk.x, "x")?)?;
                let y = b64_decode(member(&jwk.y, "y")?)?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::Malformed);
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                    .map_err(|_| KeyError::Malformed)?;
                (Algorithm::ES256, key)
            }
            ("OKP", Some("Ed25519")) => {
                let x = b64_decode(member(&jwk.x, "x")?)?;
                if x.len() != 32 {
                    return Err(KeyError::Malformed);
                }
                let key = ParsedPublicKey::new(&ED25519, &x).map_err(|_| KeyError::Malformed)?;
                (Algorithm::EdDSA, key)
            }
            _ => return Err(KeyError::UnsupportedKeyType),
        };
        if let Some(declared) = jwk.alg.as_deref()
            && declared != alg.as_str()
        {
            return Err(KeyError::AlgMismatch(declared.to_owned()));
        }
        Ok(Self {
            alg,
            kid: jwk.kid.clone(),
            key,
        })
    }

    /// Builds a key from a SubjectPublicKeyInfo PEM (`PUBLIC KEY`).
    pub fn from_public_pem(text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(text).map_err(|_| KeyError::BadPem)?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::BadPem);
        }
        let der = block.contents();
        let (alg, key) = if let Ok(k) = ParsedPublicKey::new(&ED25519, der) {
            (Algorithm::EdDSA, k)
        } else if let Ok(k) = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, der) {
            (Algorithm::ES256, k)
        } else if let Ok(k) = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der) {
            (Algorithm::RS256, k)
        } else {
            return Err(KeyError::UnsupportedKeyType);
        };
        Ok(Self {
            alg,
            kid: None,
            key,
        })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Checks `sig` over `msg`. The caller has already matched the JWS `alg`
    /// against [`VerifyingKey::alg`].
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.key.verify_sig(msg, sig).is_ok()
    }
}

fn member<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, KeyError> {
    v.as_deref().ok_or(KeyError::MissingMember(name))
}

fn trim_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// PEM (RFC 7468) with `\n` line ends (the `pem` crate defaults to `\r\n`),
/// as key files have always been written.
fn to_pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_sign_verify_each_alg() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            assert_eq!(key.alg(), alg);
            let sig = key.sign(b"hello").unwrap();
            let vk = key.verifying_key().unwrap();
            assert_eq!(vk.alg(), alg);
            assert!(vk.verify(b"hello", &sig));
            assert!(!vk.verify(b"hellO", &sig));
            // PEM round trip keeps the kid.
            let again = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
            assert_eq!(again.kid(), key.kid());
            assert_eq!(again.public_jwk(), key.public_jwk());
            // SPKI PEM of the public half verifies too, with the same alg.
            let from_pem = VerifyingKey::from_public_pem(&key.public_key_pem().unwrap()).unwrap();
            assert_eq!(from_pem.alg(), alg);
            assert!(from_pem.verify(b"hello", &sig));
        }
    }

    #[test]
    fn refuses_bad_algs_and_keys() {
        assert!(matches!(
            "none".parse::<Algorithm>(),
            Err(KeyError::UnsupportedAlgorithm(_))
        ));
        assert!("HS256".parse::<Algorithm>().is_err());
        assert!("rs256".parse::<Algorithm>().is_err());
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let mut jwk = key.public_jwk().clone();
        jwk.alg = Some("HS256".into());
        assert_eq!(
            VerifyingKey::from_jwk(&jwk).unwrap_err(),
            KeyError::AlgMismatch("HS256".into())
        );
        let mut jwk = key.public_jwk().clone();
        jwk.d = Some("AAAA".into());
        assert_eq!(
            VerifyingKey::from_jwk(&jwk).unwrap_err(),
            KeyError::PrivateMaterial
        );
        let oct = Jwk {
            kty: "oct".into(),
            ..empty_jwk()
        };
        assert_eq!(
            VerifyingKey::from_jwk(&oct).unwrap_err(),
            KeyError::UnsupportedKeyType
        );
        assert_eq!(SigningKey::from_pem("nope").unwrap_err(), KeyError::BadPem);
    }

    #[test]
    fn pem_files_keep_their_shape() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let text = key.to_pkcs8_pem().unwrap();
        // `\n` line ends, 64 columns, one block: what the keys folder always held.
        assert!(!text.contains('\r'));
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(text.ends_with("\n-----END PRIVATE KEY-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        // Text around the block is ignored; a block whose END label differs is not PEM.
        let framed = format!("comment\n{text}trailer\n");
        assert_eq!(SigningKey::from_pem(&framed).unwrap().kid(), key.kid());
        let mismatched = text.replace("END PRIVATE KEY", "END PUBLIC KEY");
        assert_eq!(
            SigningKey::from_pem(&mismatched).unwrap_err(),
            KeyError::BadPem
        );
        // A private key is not a public one.
        assert_eq!(
            VerifyingKey::from_public_pem(&text).unwrap_err(),
            KeyError::BadPem
        );
    }
}
