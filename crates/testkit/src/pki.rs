//! A throw-away certificate authority and a server certificate signed by it,
//! for tests that need real TLS (nginx in front of the servers).

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Names the test server certificate is valid for (the same set as
/// `scripts/generate-local-certs.sh` minus the compose service names).
pub const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A test CA and one server certificate it signed (ECDSA P-256, PEM).
#[derive(Clone)]
pub struct TestPki {
    /// The CA certificate: the only root a test client should trust.
    pub ca_pem: String,
    /// The server certificate (leaf only).
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// Where [`TestPki::write_to`] put the files.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// Generates a CA ("secure-mcp test CA") and a server certificate for
    /// [`SERVER_NAMES`].
    ///
    /// # Panics
    ///
    /// When rcgen cannot generate keys or sign (a broken crypto back end).
    pub fn generate() -> TestPki {
        Self::try_generate().unwrap_or_else(|e| panic!("testkit: test PKI: {e}"))
    }

    fn try_generate() -> Result<TestPki, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name = dn("secure-mcp test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate()?;
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
        let mut leaf = CertificateParams::new(names)?;
        leaf.distinguished_name = dn("localhost");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer)?;
        Ok(TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem`, `server.pem` and `server-key.pem` (0600) into `dir`.
    ///
    /// # Panics
    ///
    /// When the files cannot be written.
    pub fn write_to(&self, dir: &Path) -> PkiFiles {
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        };
        let write = |path: &Path, text: &str| {
            fs::write(path, text)
                .unwrap_or_else(|e| panic!("testkit: cannot write {}: {e}", path.display()));
        };
        write(&files.ca, &self.ca_pem);
        write(&files.cert, &self.cert_pem);
        write(&files.key, &self.key_pem);
        restrict(&files.key);
        files
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "secure-mcp tests");
    dn
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("testkit: chmod 600 {}: {e}", path.display()));
}

#[cfg(not(unix))]
fn restrict(_path: &Path) {}
