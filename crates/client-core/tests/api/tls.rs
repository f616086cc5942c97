//! TLS against a server whose certificate comes from a test CA: refused
//! without the CA, accepted with SSL_CERT_FILE or MCP_CA_CERT, refused when
//! the certificate names another host.

use std::time::Duration;

use client_core::McpClient;
use serde_json::json;
use testkit::TestCa as Ca;

use crate::support::stack::{Front, OPENAI_CLIENT, Options, Stack};

async fn tls_stack(ca: &Ca, names: &[&str]) -> Stack {
    let leaf = ca.issue(names);
    Stack::start_with(Options {
        front: Front::Tls {
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
        },
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn the_server_is_trusted_only_through_the_configured_ca() {
    let ca = Ca::new("secure-mcp test CA");
    let stack = tls_stack(&ca, &["localhost", "127.0.0.1"]).await;
    assert!(stack.mcp_url.starts_with("https://localhost:"));
    let ca_file = stack.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();

    let err = McpClient::connect(&stack.config(OPENAI_CLIENT, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot discover the authorization server: cannot reach {}: TLS: the server's certificate \
             is not signed by a trusted CA — set SSL_CERT_FILE (or MCP_CA_CERT) to the PEM of the CA \
             that issued it, e.g. certs/ca.pem or \"$(mkcert -CAROOT)/rootCA.pem\"",
            stack.mcp_url
        )
    );

    for var in ["SSL_CERT_FILE", "MCP_CA_CERT"] {
        let config = stack.config(OPENAI_CLIENT, &[(var, ca_file.to_str().unwrap())]);
        let client = McpClient::connect(&config).await.unwrap();
        assert_eq!(client.list_tools().await.unwrap().len(), 4, "{var}");
        let out = client
            .call_tool("get_customer_info", json!({"customer_id": "12345"}))
            .await
            .unwrap();
        assert!(out.text.contains("Alice Johnson"), "{var}: {}", out.text);
        client.close(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    let ca = Ca::new("secure-mcp test CA");
    let stack = tls_stack(&ca, &["wrong.example"]).await;
    let ca_file = stack.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let config = stack.config(
        OPENAI_CLIENT,
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
    );
    let err = McpClient::connect(&config).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot discover the authorization server: cannot reach {}: TLS: the server's certificate \
             is not valid for this host name — use the name the certificate was issued for (e.g. \
             localhost) or reissue it with that name",
            stack.mcp_url
        )
    );
}

#[tokio::test]
async fn a_ca_from_another_authority_does_not_help() {
    let ca = Ca::new("secure-mcp test CA");
    let other = Ca::new("someone else's CA");
    let stack = tls_stack(&ca, &["localhost"]).await;
    let other_file = stack.dir.join("other-ca.pem");
    std::fs::write(&other_file, &other.cert_pem).unwrap();
    let config = stack.config(
        OPENAI_CLIENT,
        &[("SSL_CERT_FILE", other_file.to_str().unwrap())],
    );
    let err = McpClient::connect(&config).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("TLS: the server's certificate is not signed by a trusted CA"),
        "{err}"
    );
}
