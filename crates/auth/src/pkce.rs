//! PKCE (RFC 7636) with the only method OAuth 2.1 lets us offer, `S256`:
//! the one place both /authorize (the challenge) and /token (the verifier)
//! take the rule from.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn verifier_is_valid(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is BASE64URL(SHA-256(…)) without padding: exactly 43
/// base64url characters.
pub fn challenge_is_valid(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The S256 challenge of `verifier`: BASE64URL(SHA-256(ASCII(verifier))).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well-formed and matches `challenge`, compared in
/// constant time (the challenge is public, but the habit costs nothing).
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    verifier_is_valid(verifier)
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            s256_challenge(verifier).as_bytes(),
            challenge.as_bytes(),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(challenge_is_valid(challenge));
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
    }

    #[test]
    fn verifier_syntax() {
        assert!(verifier_is_valid(&"a".repeat(43)));
        assert!(verifier_is_valid(&"-._~".repeat(32)));
        assert!(!verifier_is_valid(&"a".repeat(42)));
        assert!(!verifier_is_valid(&"a".repeat(129)));
        assert!(!verifier_is_valid(&format!("{}+", "a".repeat(42))));
        assert!(!verifier_is_valid(&format!("{}é", "a".repeat(41))));
        // A short verifier is refused even when its challenge matches.
        assert!(!verify_s256("short", &s256_challenge("short")));
        assert!(!challenge_is_valid(&"a".repeat(44)));
        assert!(!challenge_is_valid(&format!("{}=", "a".repeat(42))));
    }
}
