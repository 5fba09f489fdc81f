//! Who is on the other end of a command channel, as far as the transport could prove it.
//!
//! Plain TCP proves only an address. TLS with a client certificate adds the certificate's
//! SHA-256 fingerprint and subject; access control (issue: subscriber ACLs) keys its rules on
//! these.

use std::net::SocketAddr;

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The verified client certificate, if the transport authenticated one.
    pub certificate: Option<CertificateIdentity>,
}

/// A verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// SHA-256 of the DER certificate, lowercase hex without separators.
    pub fingerprint_sha256: String,
    /// The subject's common name, when the certificate has one.
    pub common_name: Option<String>,
}

impl PeerIdentity {
    /// An identity proven only by its address (plain TCP).
    pub fn address_only(addr: SocketAddr) -> Self {
        Self {
            addr,
            certificate: None,
        }
    }
}
