//! A throw-away certificate authority and server certificates signed by it,
//! for tests that need real TLS (nginx or a TLS proxy in front of the
//! servers): [`TestPki`] (a CA and one certificate for [`SERVER_NAMES`], as
//! files for nginx) and [`TestCa`] (certificates for chosen names).

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
        let ca = TestCa::try_new("secure-mcp test CA")?;
        let leaf = ca.try_issue(SERVER_NAMES)?;
        Ok(TestPki {
            ca_pem: ca.cert_pem,
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
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

/// A test CA that issues server certificates for chosen names (e.g. one
/// for the wrong host, to test that clients refuse it).
pub struct TestCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A server certificate (leaf only) and its private key (PKCS#8), PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A CA named `common_name` (ECDSA P-256).
    ///
    /// # Panics
    ///
    /// When rcgen cannot generate keys or sign (a broken crypto back end).
    pub fn new(common_name: &str) -> TestCa {
        Self::try_new(common_name).unwrap_or_else(|e| panic!("testkit: test CA: {e}"))
    }

    fn try_new(common_name: &str) -> Result<TestCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name = dn(common_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = ca.self_signed(&key)?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(ca, key),
        })
    }

    /// A server certificate for `names` (DNS names or IP addresses; the
    /// first is also the common name).
    ///
    /// # Panics
    ///
    /// When `names` is empty or rcgen fails.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        self.try_issue(names)
            .unwrap_or_else(|e| panic!("testkit: certificate for {names:?}: {e}"))
    }

    fn try_issue(&self, names: &[&str]) -> Result<Leaf, rcgen::Error> {
        let key = KeyPair::generate()?;
        let list: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut leaf = CertificateParams::new(list)?;
        leaf.distinguished_name = dn(names.first().copied().unwrap_or("localhost"));
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
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
