//! Strict `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2).
//!
//! Read with a hard size cap, refuse other media types, refuse repeated
//! parameters, and treat empty values as absent (RFC 6749 §3.1).

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};

use crate::error::OAuthError;

/// Largest form body we read. Token requests are well under 1 KiB; a client
/// assertion with a large RSA signature stays under 4 KiB.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Parsed form parameters.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// The value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parses a body, refusing repeated parameters.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if v.is_empty() {
                continue;
            }
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                let name: String = k.chars().take(40).collect();
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{name}` is repeated"
                )));
            }
        }
        Ok(Self(map))
    }
}

fn too_large() -> OAuthError {
    OAuthError::invalid_request(format!("request body exceeds {MAX_FORM_BYTES} bytes"))
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// Reads and parses a form body from a request.
pub async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| too_large())?;
    Params::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses_repeats() {
        let p = Params::parse(b"grant_type=client_credentials&scope=a+b&resource=&x=%2F").unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("a b"));
        assert_eq!(p.get("resource"), None, "empty values count as absent");
        assert_eq!(p.get("x"), Some("/"));
        let e = Params::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.description, "parameter `scope` is repeated");
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Params::parse(&body);
        }
    }
}
