//! TLS on both fronts: 1.2 and 1.3 accepted, 1.0/1.1, CBC suites and plain
//! HTTP refused, security headers on every answer.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::Stack;
use crate::tools;

/// A rustls client limited to `version`, trusting only the test CA, that
/// GETs /health over HTTP/1.1. Returns (negotiated version, status line).
async fn get_health(
    stack: &Stack,
    port: u16,
    version: &'static SupportedProtocolVersion,
) -> (ProtocolVersion, String) {
    let pem = std::fs::read(stack.ca_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let cert: CertificateDer<'static> = cert.unwrap();
        roots.add(cert).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("{version:?} handshake with port {port} failed: {e}"));
    let negotiated = tls.get_ref().1.protocol_version().unwrap();
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    (
        negotiated,
        text.lines().next().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn tls12_and_tls13_are_accepted_on_both_fronts() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    for port in [stack.nginx().oauth_port(), stack.nginx().mcp_port()] {
        for (version, expected) in [
            (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        ] {
            let (negotiated, status) = get_health(&stack, port, version).await;
            assert_eq!(negotiated, expected, "port {port}");
            assert_eq!(status, "HTTP/1.1 200 OK", "port {port} over {expected:?}");
        }
    }
}

/// `openssl s_client` against `port`; (succeeded, combined output).
fn s_client(openssl: &std::path::Path, port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(openssl)
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", "-brief"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn tls10_tls11_and_cbc_suites_are_refused() {
    let Some(openssl) = tools::openssl() else {
        return;
    };
    let Some(stack) = Stack::start().await else {
        return;
    };
    // OpenSSL 3 refuses TLS < 1.2 on its own at the default security level;
    // level 0 makes the client really offer it, so a failure is nginx's.
    let old = "DEFAULT:@SECLEVEL=0";
    for port in [stack.nginx().oauth_port(), stack.nginx().mcp_port()] {
        // Control: the same client with TLS 1.2 gets through.
        let (ok, out) = s_client(&openssl, port, &["-tls1_2", "-cipher", old]);
        assert!(ok, "openssl -tls1_2 should connect to {port}:\n{out}");
        assert!(out.contains("TLSv1.2"), "{out}");
        for flag in ["-tls1", "-tls1_1"] {
            let (ok, out) = s_client(&openssl, port, &[flag, "-cipher", old]);
            assert!(!ok, "openssl {flag} must be refused by {port}:\n{out}");
            assert!(
                out.contains("alert protocol version") || out.contains("unsupported protocol"),
                "{flag} on {port} failed for another reason than the version:\n{out}"
            );
        }
        // TLS 1.2 without forward secrecy or with CBC: no shared cipher.
        for cipher in ["ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256"] {
            let (ok, out) = s_client(&openssl, port, &["-tls1_2", "-cipher", cipher]);
            assert!(!ok, "{cipher} must be refused by {port}:\n{out}");
        }
    }
}

#[tokio::test]
async fn plain_http_is_refused_and_never_reaches_a_server() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    for port in [stack.nginx().oauth_port(), stack.nginx().mcp_port()] {
        let mut tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "plain HTTP to {port}: {text}"
        );
        assert!(
            text.contains("The plain HTTP request was sent to HTTPS port"),
            "{text}"
        );
    }
    // nginx logs these with no upstream: nothing was proxied.
    let log = stack.nginx().access_log();
    let plain: Vec<&str> = log.lines().filter(|l| l.contains(" 400 ")).collect();
    assert_eq!(plain.len(), 2, "access log:\n{log}");
    assert!(plain.iter().all(|l| l.contains("upstream=-")), "{log}");
}

#[tokio::test]
async fn security_headers_on_every_answer() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let mcp_base = stack.resource.trim_end_matches("/mcp").to_owned();
    let urls = [
        format!("{}/health", stack.issuer),
        format!("{}/.well-known/oauth-authorization-server", stack.issuer),
        format!("{}/token", stack.issuer), // 405/400 error answers too
        format!("{mcp_base}/health"),
        format!("{mcp_base}/.well-known/oauth-protected-resource/mcp"),
        stack.resource.clone(), // 401 without a token
    ];
    for url in urls {
        let resp = stack.http.get(&url).send().await.unwrap();
        let h = resp.headers();
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{url} ({}): no {n} header", resp.status()))
        };
        assert_eq!(
            get("strict-transport-security"),
            "max-age=31536000",
            "{url}"
        );
        assert_eq!(get("x-content-type-options"), "nosniff", "{url}");
        assert_eq!(get("x-frame-options"), "DENY", "{url}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{url}");
        assert_eq!(
            get("content-security-policy"),
            "default-src 'none'; frame-ancestors 'none'",
            "{url}"
        );
        // server_tokens off: no version number.
        assert_eq!(get("server"), "nginx", "{url}");
    }
}
