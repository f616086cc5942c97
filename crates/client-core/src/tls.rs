//! TLS: one rustls configuration for every connection the client makes.
//!
//! Trusted roots are the Mozilla set compiled in (webpki-roots) plus every
//! certificate in the PEM files named by `SSL_CERT_FILE` / `MCP_CA_CERT`
//! (a local CA such as mkcert's or `certs/ca.pem`). Certificates are always
//! verified, hostnames always checked: there is deliberately no option,
//! variable or flag that turns verification off.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why the TLS trust store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "{var}={path} cannot be read ({source}) — point it at a PEM file with the CA certificate"
    )]
    Read {
        var: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{var}={path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificates { var: String, path: PathBuf },
    #[error("{var}={path}: no usable CA certificate in it ({reason})")]
    Unusable {
        var: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The trusted roots: webpki's plus the extra CA files.
#[derive(Debug, Clone)]
pub struct TrustStore {
    roots: Arc<RootCertStore>,
    extra: usize,
}

impl TrustStore {
    /// webpki roots plus every certificate in `files` (`(variable, path)`).
    pub fn load(files: &[(String, PathBuf)]) -> Result<Self, TlsError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut extra = 0;
        for (var, path) in files {
            let certs = read_pem_certs(var, path)?;
            let (added, ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::Unusable {
                    var: var.clone(),
                    path: path.clone(),
                    reason: format!("{ignored} certificate(s) could not be parsed"),
                });
            }
            tracing::debug!(%var, path = %path.display(), added, ignored, "extra CA certificates loaded");
            extra += added;
        }
        Ok(Self {
            roots: Arc::new(roots),
            extra,
        })
    }

    /// Only the webpki roots.
    pub fn webpki_only() -> Self {
        Self {
            roots: Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            extra: 0,
        }
    }

    /// How many certificates came from the extra CA files.
    pub fn extra_count(&self) -> usize {
        self.extra
    }

    /// A rustls client configuration (TLS 1.2 and 1.3, h2 and http/1.1 ALPN).
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The HTTP client every part of the client uses (token endpoint, MCP,
    /// LLM APIs): this trust store, no redirects (credentials must not
    /// follow a redirect), bounded connect and idle-read times.
    pub fn http_client(&self) -> Result<reqwest::Client, TlsError> {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.rustls_config()?)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            // Per read, not per request: MCP streams stay open, the server
            // pings them well within this.
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("secure-mcp-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TlsError::Client)
    }
}

fn read_pem_certs(var: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        var: var.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            var: var.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// If `err` failed because of TLS, a sentence saying what is wrong and how
/// to fix it; `None` for other failures.
pub fn explain(err: &(dyn StdError + 'static)) -> Option<String> {
    let tls = find_rustls_error(err)?;
    let text = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
                "the server's certificate is not signed by a trusted CA — set SSL_CERT_FILE \
                 (or MCP_CA_CERT) to the PEM of the CA that issued it, e.g. certs/ca.pem or \
                 \"$(mkcert -CAROOT)/rootCA.pem\""
                    .to_owned()
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for this host name — use the name the \
                 certificate was issued for (e.g. localhost) or reissue it with that name"
                    .to_owned()
            }
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired — renew it (scripts/generate-local-certs.sh)"
                    .to_owned()
            }
            other => format!("the server's certificate was rejected ({other:?})"),
        },
        other => format!("TLS handshake failed ({other})"),
    };
    Some(format!("TLS: {text}"))
}

fn find_rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error::source() skips the wrapped error itself, so look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// A one-line description of a request failure: the TLS explanation when
/// there is one, otherwise the error and its causes.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    if let Some(tls) = explain(err) {
        return tls;
    }
    // reqwest's own line repeats the URL, which our messages already name.
    let (mut parts, mut current) = match (err.downcast_ref::<reqwest::Error>(), err.source()) {
        (Some(_), Some(source)) => (vec![source.to_string()], source.source()),
        _ => (vec![err.to_string()], err.source()),
    };
    while let Some(e) = current {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_ca_files_are_named() {
        let e = TrustStore::load(&[("SSL_CERT_FILE".into(), "/nonexistent/ca.pem".into())])
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("SSL_CERT_FILE=/nonexistent/ca.pem cannot be read ("),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let e = TrustStore::load(&[("MCP_CA_CERT".into(), p.clone())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "MCP_CA_CERT={} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                p.display()
            )
        );
    }

    #[test]
    fn explains_wrapped_rustls_errors() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let text = explain(&io).unwrap();
        assert!(text.starts_with("TLS: the server's certificate is not signed by a trusted CA"));
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ));
        assert!(
            explain(&io)
                .unwrap()
                .contains("not valid for this host name")
        );
        assert!(explain(&std::io::Error::other("plain")).is_none());
    }
}
