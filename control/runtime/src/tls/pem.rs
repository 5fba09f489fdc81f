//! Reading certificates, private keys and CRLs from PEM files (RFC 7468), with errors that name
//! the file and say what was missing.

use anyhow::Context as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::Path;

/// Every `CERTIFICATE` block of a PEM file, in order (end entity first for a chain).
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificate file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("certificate file {} is not valid PEM", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "certificate file {} holds no CERTIFICATE block",
        path.display()
    );
    Ok(certs)
}

/// The first certificate of a PEM file (the end entity).
pub fn load_cert(path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let mut certs = load_certs(path)?;
    Ok(certs.swap_remove(0))
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| {
        format!(
            "cannot read a private key (PKCS#8, PKCS#1 or SEC1 PEM) from {}",
            path.display()
        )
    })
}

/// Every `X509 CRL` block of a PEM file.
pub fn load_crls(path: &Path) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .with_context(|| format!("cannot read CRL file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("CRL file {} is not valid PEM", path.display()))?;
    anyhow::ensure!(
        !crls.is_empty(),
        "CRL file {} holds no X509 CRL block",
        path.display()
    );
    Ok(crls)
}
