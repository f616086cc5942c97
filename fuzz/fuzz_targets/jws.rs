//! What an attacker's token reaches: the compact-JWS decoder
//! (`auth::jwt::Unverified::parse`, `peek_claims`, the key/alg match and the
//! signature check) and a whole `auth::Verifier` verification with a fixed
//! Ed25519 key (generated once per run; no key material is committed).
//!
//! The first byte picks the mode; the rest is either
//! - 0: the token text itself;
//! - 1: `header JSON \0 claims JSON \0 signature`, each base64url-encoded here
//!   (so the fuzzer explores the JSON, not base64);
//! - 2: `header JSON \0 claims JSON`, signed with the fixed key (a `kid`
//!   naming that key is added to a header object without one), so claim
//!   checks behind a valid signature are reached too.
//!
//! Properties: a parsed token has an allow-listed `alg` spelled exactly
//! (never `none` or an HMAC); nothing not signed here verifies; an accepted
//! access token has `typ` at+jwt, the verifier's issuer and audience, and is
//! within its validity window.
#![no_main]

use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use auth::jwk::JwkSet;
use auth::jwt::{MAX_TOKEN_LEN, Unverified};
use auth::verify::StaticKeys;
use auth::{Algorithm, SigningKey, Verifier, VerifyingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://mcp.example.com/mcp";
/// "Now" for the claim checks, fixed so a crash reproduces.
const NOW: i64 = 1_800_000_000;

struct Fixture {
    key: SigningKey,
    verifying: VerifyingKey,
    verifier: Verifier,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap_or_else(|e| panic!("fixture key: {e}"));
    let verifying = key
        .verifying_key()
        .unwrap_or_else(|e| panic!("fixture key: {e}"));
    let set = JwkSet {
        keys: vec![key.public_jwk().clone()],
    };
    let verifier =
        Verifier::new(ISSUER.to_owned(), AUDIENCE, Arc::new(StaticKeys::new(&set))).with_leeway(0);
    Fixture {
        key,
        verifying,
        verifier,
    }
});

/// Static keys never wait (their `refresh` is a ready future): one poll.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification with static keys did not complete at once"),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn check_token(token: &str, signed_here: bool) {
    let fx = &*FIXTURE;
    match Unverified::parse(token) {
        Ok(jws) => {
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert!(
                Algorithm::ALL.iter().any(|a| a.as_str() == jws.header.alg),
                "alg {:?} accepted",
                jws.header.alg
            );
            assert_eq!(jws.alg.as_str(), jws.header.alg);
            assert!(jws.header.crit.is_none());
            let _ = jws.peek_claims::<Value>();
            let verified = jws.verify::<Value>(&fx.verifying);
            if verified.is_ok() {
                assert!(signed_here, "a token not signed by the key verified");
                assert_eq!(jws.alg, Algorithm::EdDSA);
            }
        }
        Err(_) => {}
    }
    match ready(fx.verifier.verify_at(token, NOW)) {
        Ok(claims) => {
            assert!(signed_here, "a token not signed by the key verified");
            let jws = Unverified::parse(token).unwrap_or_else(|e| panic!("verified yet {e}"));
            let typ = jws.header.typ.unwrap_or_default().to_ascii_lowercase();
            assert!(
                typ == "at+jwt" || typ == "application/at+jwt",
                "typ {typ:?}"
            );
            assert_eq!(jws.header.kid.as_deref(), Some(fx.key.kid()));
            assert_eq!(claims.iss, ISSUER);
            assert!(claims.aud.contains(AUDIENCE));
            assert!(claims.exp > NOW && claims.nbf <= NOW && claims.iat <= NOW);
        }
        Err(e) => {
            let _ = e.reason();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0);
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    match mode % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check_token(token, false);
            }
        }
        1 => {
            let token = format!(
                "{}.{}.{}",
                b64(a.unwrap_or_default()),
                b64(b.unwrap_or_default()),
                b64(c.unwrap_or_default())
            );
            check_token(&token, false);
        }
        _ => {
            let fx = &*FIXTURE;
            let mut header = a.unwrap_or_default().to_vec();
            if let Ok(Value::Object(mut h)) = serde_json::from_slice::<Value>(&header)
                && !h.contains_key("kid")
            {
                h.insert("kid".into(), fx.key.kid().into());
                header = Value::Object(h).to_string().into_bytes();
            }
            let input = format!("{}.{}", b64(&header), b64(b.unwrap_or_default()));
            let Ok(sig) = fx.key.sign(input.as_bytes()) else {
                return;
            };
            check_token(&format!("{input}.{}", b64(&sig)), true);
        }
    }
});
