//! One issuer rule for every party (issue 10): the operator may spell
//! `OAUTH_ISSUER` with a trailing slash or an upper-case host, the same
//! spelling given to both servers, and tokens still verify. The real
//! binaries read the variable (child processes), mcp-server discovers its
//! keys through that issuer's RFC 8414 metadata, and `iss` in the token is
//! exactly `issuer` in the metadata document.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::helpers::{CLIENT, list_tools_2026};

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWS payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

async fn accepted_with_issuer_spelled(spelling: impl Fn(u16) -> String) {
    for bin in ["oauth-server", "mcp-server"] {
        if let Err(e) = stack::child::binary(bin, None) {
            assert!(!testkit::services_required(), "{e:#}");
            eprintln!("SKIPPED: {e:#}");
            return;
        }
    }
    let port = testkit::free_port();
    let issuer = spelling(port);
    let Some(stack) = stack::Stack::builder()
        .child_processes()
        .child_output(stack::ChildOutput::File)
        .oauth_port(port)
        .client(
            stack::Client::with_secret(CLIENT.0, CLIENT.1)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"]),
        )
        .oauth_env("OAUTH_ISSUER", &issuer)
        .mcp_env("OAUTH_ISSUER", &issuer)
        // Empty = unset: discover the JWKS through the issuer as spelled.
        .mcp_env("OAUTH_JWKS_URL", "")
        .start_or_skip()
        .await
    else {
        return;
    };
    let canonical = format!("http://localhost:{port}");

    let metadata: Value = stack
        .http()
        .get(format!(
            "http://127.0.0.1:{port}/.well-known/oauth-authorization-server"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], canonical.as_str(), "{issuer:?}");
    assert_eq!(
        metadata["token_endpoint"],
        format!("{canonical}/token").as_str()
    );

    let token = stack.token(CLIENT, None, None).await.unwrap();
    assert_eq!(payload(&token)["iss"], metadata["issuer"], "{issuer:?}");

    let r = list_tools_2026(stack.http(), stack.mcp_url(), &token).await;
    assert_eq!(r.status, 200, "{issuer:?}: {}", r.text);
    let listed = r.json();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {}", r.text))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["get_customer_info", "get_recent_customers"],
        "{issuer:?}"
    );
}

#[tokio::test]
async fn a_trailing_slash_in_oauth_issuer_does_not_break_tokens() {
    accepted_with_issuer_spelled(|port| format!("http://localhost:{port}/")).await;
}

#[tokio::test]
async fn an_upper_case_host_in_oauth_issuer_does_not_break_tokens() {
    accepted_with_issuer_spelled(|port| format!("http://LOCALHOST:{port}")).await;
}
