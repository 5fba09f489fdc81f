//! The `[tls]` table of the `sttp serve` configuration file (wire.md §8; README "TLS"):
//!
//! ```toml
//! [tls]
//! enabled = true
//! cert = "certs/publisher.cert.pem"
//! key = "certs/publisher.key.pem"
//! allow_certs = ["certs/sub1.cert.pem"]          # pinned subscriber certificates …
//! allow_fingerprints = ["3f9a…"]                  # … and/or their SHA-256 (hex, ':' allowed)
//! # ca = "certs/ca.cert.pem"                      # or: trust a private CA instead
//! # crls = ["certs/ca.crl.pem"]
//! ```
//!
//! Pinning (`allow_certs`/`allow_fingerprints`) and CA trust (`ca`, `crls`) are exclusive: a
//! configuration naming both is rejected rather than guessed at.

use crate::tls::{fingerprint, pem, ClientTrust, TlsServer, TlsServerSettings};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

/// TLS settings of the publisher.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve TLS (default port 7167) instead of plain TCP.
    pub enabled: bool,
    /// The publisher's certificate (PEM, end entity first).
    pub cert: Option<PathBuf>,
    /// The publisher's private key (PEM).
    pub key: Option<PathBuf>,
    /// Pinned subscriber certificates (PEM files; the first certificate of each is pinned).
    pub allow_certs: Vec<PathBuf>,
    /// Pinned subscriber certificate fingerprints (SHA-256 hex, `:` separators allowed).
    pub allow_fingerprints: Vec<String>,
    /// A CA whose certificates are trusted (instead of pinning).
    pub ca: Option<PathBuf>,
    /// Revocation lists for the CA (PEM).
    pub crls: Vec<PathBuf>,
}

impl TlsConfig {
    /// Checks what can be checked without reading files.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        anyhow::ensure!(
            self.cert.is_some() && self.key.is_some(),
            "TLS needs the publisher's certificate and key (tls.cert, tls.key / --cert, --key)"
        );
        let pinned = !self.allow_certs.is_empty() || !self.allow_fingerprints.is_empty();
        let ca = self.ca.is_some();
        anyhow::ensure!(
            pinned || ca,
            "TLS needs subscribers to trust: pin certificates (tls.allow_certs / --allow-cert, \
             tls.allow_fingerprints) or name a CA (tls.ca / --ca)"
        );
        anyhow::ensure!(
            !(pinned && ca),
            "choose one TLS trust model: pinned certificates or a CA, not both"
        );
        anyhow::ensure!(
            ca || self.crls.is_empty(),
            "tls.crls / --crl need a CA (tls.ca / --ca)"
        );
        for f in &self.allow_fingerprints {
            fingerprint::parse(f).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Reads the files and builds the acceptor; `None` when TLS is off.
    pub fn server(&self) -> anyhow::Result<Option<TlsServer>> {
        if !self.enabled {
            return Ok(None);
        }
        self.validate()?;
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            anyhow::bail!("TLS needs the publisher's certificate and key");
        };
        let trust = match &self.ca {
            Some(ca) => ClientTrust::Ca {
                roots: pem::load_certs(ca)?,
                crls: self
                    .crls
                    .iter()
                    .map(|p| pem::load_crls(p))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into_iter()
                    .flatten()
                    .collect(),
            },
            None => {
                let mut fingerprints = HashSet::new();
                for path in &self.allow_certs {
                    fingerprints.insert(fingerprint::sha256_hex(&pem::load_cert(path)?));
                }
                for f in &self.allow_fingerprints {
                    fingerprints.insert(fingerprint::parse(f).map_err(anyhow::Error::msg)?);
                }
                ClientTrust::Pinned { fingerprints }
            }
        };
        TlsServer::new(TlsServerSettings {
            cert_chain: pem::load_certs(cert)?,
            key: pem::load_key(key)?,
            trust,
        })
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_table_and_checks_the_trust_model() {
        let c: TlsConfig = toml::from_str(
            "enabled = true\ncert = \"p.pem\"\nkey = \"k.pem\"\nallow_fingerprints = [\"AB:CD\"]\n",
        )
        .unwrap();
        assert!(c.enabled);
        // A 2-byte fingerprint is not a SHA-256.
        assert!(c.validate().unwrap_err().to_string().contains("64 hex"));
        let ok = TlsConfig {
            allow_fingerprints: vec!["ab".repeat(32)],
            ..c.clone()
        };
        assert!(ok.validate().is_ok());
        let both = TlsConfig {
            ca: Some("ca.pem".into()),
            ..ok.clone()
        };
        assert!(both
            .validate()
            .unwrap_err()
            .to_string()
            .contains("choose one"));
        let none = TlsConfig {
            allow_fingerprints: vec![],
            ..ok
        };
        assert!(none.validate().is_err());
        assert!(toml::from_str::<TlsConfig>("enable = true").is_err());
        assert!(TlsConfig::default().validate().is_ok());
    }
}
