//! JSON Web Keys (RFC 7517) and RFC 7638 thumbprints.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::KeyError;

/// A public JWK. Only the members we use are modelled; private members are
/// captured solely so that a key carrying them can be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private exponent / private key: never serialised, refused on load.
    #[serde(default, skip_serializing)]
    pub d: Option<String>,
}

/// A JWK Set document (`{"keys": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

fn member<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, KeyError> {
    v.as_deref().ok_or(KeyError::MissingMember(name))
}

impl Jwk {
    /// RFC 7638 SHA-256 thumbprint, base64url: the `kid` we publish.
    pub fn thumbprint(&self) -> Result<String, KeyError> {
        // Members in lexicographic order, no whitespace; values JSON-escaped.
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                q(member(&self.e, "e")?),
                q(member(&self.n, "n")?)
            ),
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                q(member(&self.crv, "crv")?),
                q(member(&self.x, "x")?),
                q(member(&self.y, "y")?)
            ),
            "OKP" => format!(
                r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
                q(member(&self.crv, "crv")?),
                q(member(&self.x, "x")?)
            ),
            _ => return Err(KeyError::UnsupportedKeyType),
        };
        Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 7638 §3.1.
    #[test]
    fn rfc7638_example() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_member_is_never_serialised() {
        let jwk: Jwk =
            serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"AA","d":"secret"}"#).unwrap();
        assert_eq!(jwk.d.as_deref(), Some("secret"));
        assert!(!serde_json::to_string(&jwk).unwrap().contains("secret"));
    }
}
