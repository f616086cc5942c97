//! Minimal PEM (RFC 7468) encoding and decoding for keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes DER as a PEM block with 64-column lines.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block: `(label, der)`.
pub(crate) fn decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(body).ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = super::encode("PRIVATE KEY", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(super::decode(&pem), Some(("PRIVATE KEY".into(), der)));
        assert_eq!(super::decode("garbage"), None);
    }
}
