//! Certificate fingerprints: SHA-256 of the DER encoding (wire.md §8: certificates are pinned,
//! not validated against a CA, so the fingerprint *is* the identity).
//!
//! The canonical form — in logs, in [`crate::identity::CertificateIdentity`] and printed by
//! `sttp cert new` — is 64 lowercase hex digits without separators. Configured fingerprints may
//! also be written with `:` or spaces between the bytes and in either case (the form `openssl x509
//! -fingerprint -sha256` prints).

use ring::digest::{digest, SHA256};

/// SHA-256 of `der` in the canonical form (lowercase hex, no separators).
pub fn sha256_hex(der: &[u8]) -> String {
    hex(digest(&SHA256, der).as_ref())
}

/// The canonical fingerprint with `:` between the bytes, uppercase (OpenSSL's style).
pub fn colon_form(canonical: &str) -> String {
    let upper = canonical.to_ascii_uppercase();
    let pairs: Vec<&str> = upper
        .as_bytes()
        .chunks(2)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    pairs.join(":")
}

/// Reads a configured fingerprint into the canonical form. `Err` says what is wrong with it.
pub fn parse(text: &str) -> Result<String, String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    if digits.len() != 64 {
        return Err(format!(
            "fingerprint {text:?}: expected 32 bytes of SHA-256 (64 hex digits), found {} digits",
            digits.len()
        ));
    }
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("fingerprint {text:?}: {bad:?} is not a hex digit"));
    }
    Ok(digits)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_forms() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let fp = sha256_hex(b"abc");
        assert_eq!(
            fp,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let colons = colon_form(&fp);
        assert!(colons.starts_with("BA:78:16:BF:"));
        assert_eq!(colons.len(), 64 + 31);
        assert_eq!(parse(&colons).unwrap(), fp);
        assert_eq!(parse(&fp.to_ascii_uppercase()).unwrap(), fp);
    }

    #[test]
    fn rejects_bad_fingerprints() {
        assert!(parse("abcd").unwrap_err().contains("64 hex digits"));
        let bad = format!("{}zz", "0".repeat(62));
        assert!(parse(&bad).unwrap_err().contains("not a hex digit"));
    }
}
