//! Client authentication at the token, revocation and introspection
//! endpoints: `client_secret_basic`, `client_secret_post` (RFC 6749 §2.3.1),
//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9), and `none` for
//! public clients (OAuth 2.1 §2.1): `client_id` alone, accepted only where
//! something else binds the request to the client — the authorization_code
//! grant (PKCE, redirect URI), the refresh_token grant (a token issued to that
//! client) and revocation of the client's own tokens (RFC 7009 §5).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use auth::claims::Audience;
use auth::jwt::Unverified;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::audit;
use crate::clients::{AuthMethod, Client, Credential};
use crate::directory::LookupError;
use crate::error::OAuthError;
use crate::form::Params;
use crate::state::AppState;

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest lifetime we accept for a client assertion (`exp - now`).
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// Clock skew tolerated on assertion times.
pub const ASSERTION_LEEWAY_SECS: i64 = 30;

/// A successfully authenticated client.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub client: Arc<Client>,
    pub method: AuthMethod,
}

/// Authenticates the client of a request, logging `auth.client_rejected`
/// with the precise reason on failure. The error the client sees is
/// deliberately coarse where detail would help an attacker (unknown client
/// and wrong secret read the same).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    endpoint: &'static str,
    peer: IpAddr,
) -> Result<Authenticated, OAuthError> {
    match authenticate_inner(state, headers, params, endpoint).await {
        Ok(a) => {
            state.limits.check_client(&a.client.client_id, peer).await?;
            Ok(a)
        }
        Err(f) => {
            audit::client_rejected(f.client_id.as_deref(), f.reason, endpoint, peer);
            state
                .metrics
                .client_auth_failed(attempted_method(headers, params));
            state.limits.penalize(peer).await;
            Err(f.error)
        }
    }
}

/// How a request tried to authenticate (the `method` label of a failure):
/// an `Authorization` header is `client_secret_basic`, else a
/// `client_secret` parameter `client_secret_post`, else an assertion
/// `private_key_jwt`, else `none`.
fn attempted_method(headers: &HeaderMap, params: &Params) -> &'static str {
    if headers.contains_key(header::AUTHORIZATION) {
        AuthMethod::ClientSecretBasic.as_str()
    } else if params.get("client_secret").is_some() {
        AuthMethod::ClientSecretPost.as_str()
    } else if params.get("client_assertion").is_some()
        || params.get("client_assertion_type").is_some()
    {
        AuthMethod::PrivateKeyJwt.as_str()
    } else {
        AuthMethod::None.as_str()
    }
}

struct Failure {
    error: OAuthError,
    reason: &'static str,
    client_id: Option<String>,
}

fn fail(error: OAuthError, reason: &'static str, client_id: Option<&str>) -> Failure {
    Failure {
        error,
        reason,
        client_id: client_id.map(str::to_owned),
    }
}

const GENERIC: &str = "client authentication failed";

async fn authenticate_inner(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    endpoint: &'static str,
) -> Result<Authenticated, Failure> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(parse_basic(v.as_bytes()).map_err(|e| {
            fail(
                e.with_basic_challenge(true),
                "bad_authorization_header",
                None,
            )
        })?),
    };
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    let used = usize::from(basic.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(assertion.is_some() || assertion_type.is_some());
    let param_id = params.get("client_id");
    if used > 1 {
        return Err(fail(
            OAuthError::invalid_request("use exactly one client authentication method"),
            "multiple_auth_methods",
            param_id,
        ));
    }

    if let Some((id, secret)) = basic {
        if param_id.is_some_and(|p| p != id) {
            return Err(fail(
                OAuthError::invalid_request("client_id does not match the Authorization header"),
                "client_id_mismatch",
                Some(&id),
            ));
        }
        return check_secret(state, &id, secret.as_bytes(), AuthMethod::ClientSecretBasic).await;
    }
    if let Some(secret) = post_secret {
        let Some(id) = param_id else {
            return Err(fail(
                OAuthError::invalid_request("client_id is required with client_secret"),
                "missing_client_id",
                None,
            ));
        };
        return check_secret(state, id, secret.as_bytes(), AuthMethod::ClientSecretPost).await;
    }
    if assertion.is_some() || assertion_type.is_some() {
        return check_assertion(state, assertion, assertion_type, param_id).await;
    }
    if let Some(id) = param_id
        && let Some(client) = find_client(state, id).await?
        && matches!(client.credential, Credential::None)
    {
        return check_public(client, params, endpoint);
    }
    Err(fail(
        OAuthError::invalid_client("client authentication is required"),
        "no_credentials",
        param_id,
    ))
}

async fn check_secret(
    state: &AppState,
    id: &str,
    secret: &[u8],
    method: AuthMethod,
) -> Result<Authenticated, Failure> {
    let basic = method == AuthMethod::ClientSecretBasic;
    let deny = |reason| {
        fail(
            OAuthError::invalid_client(GENERIC).with_basic_challenge(basic),
            reason,
            Some(id),
        )
    };
    // Every refusal below costs one verification (of the registry's dummy
    // hash when there is no usable hash), so an unknown client, a client
    // without a secret and a wrong secret take the same time.
    let client = find_client(state, id).await?;
    let usable = client.as_ref().and_then(|c| match &c.credential {
        Credential::Secret(hash) if c.auth_methods.contains(&method) => Some(hash),
        _ => None,
    });
    let has_secret = usable.is_some();
    let Some(ok) = state.clients.secrets().verify(id, usable, secret).await else {
        return Err(deny("shutting_down"));
    };
    match (client, ok) {
        (None, _) => Err(deny("unknown_client")),
        (Some(_), false) if !has_secret => Err(deny("method_not_allowed")),
        (Some(_), false) => Err(deny("bad_secret")),
        (Some(client), true) => Ok(Authenticated { client, method }),
    }
}

/// Grants a public client may use: each binds the request to the client
/// by something other than a secret.
pub const PUBLIC_CLIENT_GRANTS: [&str; 2] = ["authorization_code", "refresh_token"];

/// A public client (`Credential::None`) that sent only its `client_id`.
fn check_public(
    client: Arc<Client>,
    params: &Params,
    endpoint: &'static str,
) -> Result<Authenticated, Failure> {
    let id = client.client_id.as_str();
    if !client.auth_methods.contains(&AuthMethod::None) {
        return Err(fail(
            OAuthError::invalid_client("client authentication is required"),
            "method_not_allowed",
            Some(id),
        ));
    }
    match endpoint {
        "revoke" => {}
        "token" => {
            let grant = params.get("grant_type").unwrap_or_default();
            if !PUBLIC_CLIENT_GRANTS.contains(&grant) {
                return Err(fail(
                    OAuthError::new(
                        crate::error::ErrorCode::UnauthorizedClient,
                        "a public client may only use the authorization_code and \
                         refresh_token grants",
                    ),
                    "public_client_grant",
                    Some(id),
                ));
            }
        }
        _ => {
            return Err(fail(
                OAuthError::invalid_client(
                    "client authentication is required: public clients may not use this endpoint",
                ),
                "public_client_endpoint",
                Some(id),
            ));
        }
    }
    Ok(Authenticated {
        client,
        method: AuthMethod::None,
    })
}

#[derive(Deserialize)]
struct PeekIds {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    jti: String,
}

async fn check_assertion(
    state: &AppState,
    assertion: Option<&str>,
    assertion_type: Option<&str>,
    param_id: Option<&str>,
) -> Result<Authenticated, Failure> {
    if assertion_type != Some(JWT_BEARER_ASSERTION) {
        return Err(fail(
            OAuthError::invalid_request(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION}"
            )),
            "bad_assertion_type",
            param_id,
        ));
    }
    let Some(assertion) = assertion else {
        return Err(fail(
            OAuthError::invalid_request("client_assertion is missing"),
            "missing_assertion",
            param_id,
        ));
    };
    let deny = |desc: &'static str, reason, id: Option<&str>| {
        fail(OAuthError::invalid_client(desc), reason, id)
    };
    let jws = Unverified::parse(assertion).map_err(|_| {
        deny(
            "client assertion is malformed or uses an unsupported algorithm",
            "assertion_malformed",
            param_id,
        )
    })?;
    let ids: PeekIds = jws.peek_claims().map_err(|_| {
        deny(
            "client assertion claims are malformed",
            "assertion_malformed",
            param_id,
        )
    })?;
    let (Some(iss), Some(sub)) = (ids.iss, ids.sub) else {
        return Err(deny(
            "client assertion must carry iss and sub",
            "assertion_claims",
            param_id,
        ));
    };
    if iss != sub || param_id.is_some_and(|p| p != iss) {
        return Err(deny(
            "client assertion iss and sub must both equal client_id",
            "assertion_claims",
            param_id,
        ));
    }
    let id = iss.as_str();
    let Some(client) = find_client(state, id).await? else {
        return Err(deny(GENERIC, "unknown_client", Some(id)));
    };
    let (Credential::PublicKey(key), true) = (
        &client.credential,
        client.auth_methods.contains(&AuthMethod::PrivateKeyJwt),
    ) else {
        return Err(deny(GENERIC, "method_not_allowed", Some(id)));
    };
    let claims: AssertionClaims = jws
        .verify(key)
        .map_err(|_| deny(GENERIC, "assertion_bad_signature", Some(id)))?;
    if claims.iss != id || claims.sub != id {
        return Err(deny(
            "client assertion iss and sub must both equal client_id",
            "assertion_claims",
            Some(id),
        ));
    }
    let token_endpoint = state.config.token_endpoint();
    if !(claims.aud.contains(&state.config.issuer) || claims.aud.contains(&token_endpoint)) {
        return Err(deny(
            "client assertion aud must be the issuer or the token endpoint",
            "assertion_wrong_aud",
            Some(id),
        ));
    }
    let now = auth::now_unix();
    if claims.exp <= now - ASSERTION_LEEWAY_SECS {
        return Err(deny(
            "client assertion has expired",
            "assertion_expired",
            Some(id),
        ));
    }
    if claims.exp - now > MAX_ASSERTION_LIFETIME_SECS + ASSERTION_LEEWAY_SECS {
        return Err(deny(
            "client assertion exp must be at most 5 minutes ahead",
            "assertion_too_long",
            Some(id),
        ));
    }
    if claims.nbf.is_some_and(|n| n > now + ASSERTION_LEEWAY_SECS)
        || claims.iat.is_some_and(|i| i > now + ASSERTION_LEEWAY_SECS)
    {
        return Err(deny(
            "client assertion is not yet valid",
            "assertion_not_yet_valid",
            Some(id),
        ));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(deny(
            "client assertion jti must be 1-256 characters",
            "assertion_claims",
            Some(id),
        ));
    }
    let ttl =
        Duration::from_secs(u64::try_from(claims.exp - now + ASSERTION_LEEWAY_SECS).unwrap_or(1));
    match state
        .replays
        .first_use(&format!("{id}:{}", claims.jti), ttl)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(deny(
                "client assertion was already used",
                "assertion_replayed",
                Some(id),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "replay store unavailable");
            return Err(fail(
                OAuthError::new(
                    crate::error::ErrorCode::TemporarilyUnavailable,
                    "try again later",
                ),
                "replay_store_unavailable",
                Some(id),
            ));
        }
    }
    Ok(Authenticated {
        client,
        method: AuthMethod::PrivateKeyJwt,
    })
}

/// Resolves a client id through the directory; a store outage is a 503-ish
/// `temporarily_unavailable`, not "unknown client"; a refused client
/// metadata document is an unknown client.
async fn find_client(state: &AppState, id: &str) -> Result<Option<Arc<Client>>, Failure> {
    match state.clients.find(id).await {
        Ok(found) => Ok(found),
        Err(LookupError::Refused(_)) => Ok(None),
        Err(e @ LookupError::Unavailable(_)) => {
            tracing::warn!(error = %e, "client lookup failed");
            Err(fail(
                OAuthError::new(
                    crate::error::ErrorCode::TemporarilyUnavailable,
                    "try again later",
                ),
                "client_lookup_failed",
                Some(id),
            ))
        }
    }
}

/// Parses `Basic base64(urlenc(id):urlenc(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &[u8]) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic authorization header");
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "only the Basic authorization scheme is supported here",
        ));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id).ok_or_else(bad)?;
    let secret = form_decode(secret).ok_or_else(bad)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a
/// space, then percent-decoding. percent-encoding passes a malformed escape
/// (`%zz`, a trailing `%`) through as text; a credential with one is refused
/// instead, so one client id has one spelling on the wire.
fn form_decode(s: &str) -> Option<String> {
    let escapes_ok = s.split('%').skip(1).all(|rest| {
        rest.get(..2)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !escapes_ok {
        return None;
    }
    let spaced = s.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced).decode_utf8();
    decoded.ok().map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_decoding() {
        let h = format!("Basic {}", STANDARD.encode("my%20client:p%3Ass+w"));
        assert_eq!(
            parse_basic(h.as_bytes()).unwrap(),
            ("my client".into(), "p:ss w".into())
        );
        assert!(parse_basic(b"Bearer abc").is_err());
        assert!(parse_basic(b"Basic !!!").is_err());
        assert!(parse_basic(format!("Basic {}", STANDARD.encode("nocolon")).as_bytes()).is_err());
        assert!(parse_basic(format!("Basic {}", STANDARD.encode("a:%zz")).as_bytes()).is_err());
    }

    #[test]
    fn form_decoding_of_one_component() {
        assert_eq!(form_decode("a+b%2Bc%3a%C3%A9").as_deref(), Some("a b+c:é"));
        assert_eq!(form_decode("plain").as_deref(), Some("plain"));
        assert_eq!(form_decode("").as_deref(), Some(""));
        for bad in ["%", "a%2", "%zz", "%%41", "%é1", "%ff"] {
            assert_eq!(form_decode(bad), None, "{bad}");
        }
    }
}
