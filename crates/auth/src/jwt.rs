//! Compact JWS: signing, and the strict decoder used for every token we accept.
//!
//! The decoder is deliberately small: a size cap, exactly three base64url
//! parts, a JSON header whose `alg` must be one of [`Algorithm`] (so `none`
//! and every HMAC are refused before any key is touched), no `crit`
//! extensions, and a signature check against a key whose algorithm must
//! equal the header's. Claims are parsed only after the signature verifies.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{Algorithm, KeyError, SigningKey, VerifyingKey};

/// Longest token we look at; anything larger is refused unparsed.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a JWS was refused. Stable, secret-free reasons for audit logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is too long")]
    TooLong,
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("JOSE header is malformed")]
    BadHeader,
    #[error("algorithm {0:?} is not allowed")]
    UnsupportedAlg(String),
    #[error("critical header extensions are not supported")]
    Crit,
    #[error("header alg does not match the key's algorithm")]
    AlgMismatch,
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are malformed")]
    BadClaims,
    #[error("signing failed: {0}")]
    Sign(#[from] KeyError),
}

/// The JOSE header fields we read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<serde_json::Value>,
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}`.
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, JwtError> {
    let header = Header {
        alg: key.alg().as_str().to_owned(),
        typ: Some(typ.to_owned()),
        kid: Some(key.kid().to_owned()),
        crit: None,
    };
    let header_json = serde_json::to_vec(&header).map_err(|_| JwtError::BadHeader)?;
    let claims_json = serde_json::to_vec(claims).map_err(|_| JwtError::BadClaims)?;
    let mut token = String::with_capacity(
        (header_json.len() + claims_json.len()) * 4 / 3 + 8 + 344, // 344 = RS256 sig
    );
    URL_SAFE_NO_PAD.encode_string(&header_json, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims_json, &mut token);
    let sig = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&sig, &mut token);
    Ok(token)
}

/// A parsed JWS whose signature has not been checked yet.
#[derive(Debug)]
pub struct Unverified<'a> {
    pub header: Header,
    pub alg: Algorithm,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

impl<'a> Unverified<'a> {
    /// Splits and decodes a compact JWS, enforcing the alg allow-list.
    pub fn parse(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLong);
        }
        let mut parts = token.splitn(4, '.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        if h.is_empty() || p.is_empty() {
            return Err(JwtError::Malformed);
        }
        let header_json = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| JwtError::BadHeader)?;
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| JwtError::UnsupportedAlg(header.alg.clone()))?;
        if header.crit.is_some() {
            return Err(JwtError::Crit);
        }
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        if signature.is_empty() {
            return Err(JwtError::BadSignature);
        }
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok(Self {
            header,
            alg,
            signing_input,
            payload_b64: p,
            signature,
        })
    }

    /// Decodes the claims WITHOUT checking the signature. Only for choosing
    /// which key to verify with (e.g. a client assertion's `iss`); never
    /// trust anything read here.
    pub fn peek_claims<C: DeserializeOwned>(&self) -> Result<C, JwtError> {
        let payload = URL_SAFE_NO_PAD
            .decode(self.payload_b64)
            .map_err(|_| JwtError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| JwtError::BadClaims)
    }

    /// Checks the signature with `key` (whose algorithm must equal the
    /// header's) and decodes the claims.
    pub fn verify<C: DeserializeOwned>(&self, key: &VerifyingKey) -> Result<C, JwtError> {
        if key.alg() != self.alg {
            return Err(JwtError::AlgMismatch);
        }
        if !key.verify(self.signing_input.as_bytes(), &self.signature) {
            return Err(JwtError::BadSignature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(self.payload_b64)
            .map_err(|_| JwtError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| JwtError::BadClaims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn forge(header: Value, claims: Value, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    #[test]
    fn sign_then_verify() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let token = sign(&key, "at+jwt", &json!({"sub": "x"})).unwrap();
        let parsed = Unverified::parse(&token).unwrap();
        assert_eq!(parsed.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(parsed.header.kid.as_deref(), Some(key.kid()));
        let claims: Value = parsed.verify(&key.verifying_key().unwrap()).unwrap();
        assert_eq!(claims["sub"], "x");
    }

    #[test]
    fn refuses_none_hmac_and_confusion() {
        let key = SigningKey::generate(Algorithm::RS256).unwrap();
        let none = forge(json!({"alg": "none"}), json!({}), b"");
        assert_eq!(
            Unverified::parse(&none).unwrap_err(),
            JwtError::UnsupportedAlg("none".into())
        );
        let none_no_sig = format!("{}.", &none[..none.len() - 1]);
        assert!(Unverified::parse(&none_no_sig).is_err());
        let hs = forge(json!({"alg": "HS256", "kid": key.kid()}), json!({}), b"mac");
        assert_eq!(
            Unverified::parse(&hs).unwrap_err(),
            JwtError::UnsupportedAlg("HS256".into())
        );
        // ES256 header against an RSA key: refused before any crypto.
        let es = forge(
            json!({"alg": "ES256", "kid": key.kid()}),
            json!({}),
            &[1; 64],
        );
        let parsed = Unverified::parse(&es).unwrap();
        assert_eq!(
            parsed
                .verify::<Value>(&key.verifying_key().unwrap())
                .unwrap_err(),
            JwtError::AlgMismatch
        );
        let crit = forge(json!({"alg": "RS256", "crit": ["exp"]}), json!({}), b"x");
        assert_eq!(Unverified::parse(&crit).unwrap_err(), JwtError::Crit);
    }

    #[test]
    fn refuses_tampering_and_shape() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let token = sign(&key, "JWT", &json!({"a": 1})).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(json!({"a": 2}).to_string());
        parts[1] = &other;
        let tampered = parts.join(".");
        let vk = key.verifying_key().unwrap();
        assert_eq!(
            Unverified::parse(&tampered)
                .unwrap()
                .verify::<Value>(&vk)
                .unwrap_err(),
            JwtError::BadSignature
        );
        assert_eq!(Unverified::parse("a.b").unwrap_err(), JwtError::Malformed);
        assert_eq!(
            Unverified::parse("a.b.c.d").unwrap_err(),
            JwtError::Malformed
        );
        assert_eq!(
            Unverified::parse(&"a".repeat(9000)).unwrap_err(),
            JwtError::TooLong
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[A-Za-z0-9_.=-]{0,200}") {
            let _ = Unverified::parse(&s);
        }
    }
}
