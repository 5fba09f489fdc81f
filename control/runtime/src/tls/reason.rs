//! Why a TLS handshake failed, in the words the security log uses (test-plan T7/T16: one event
//! per failure with peer, fingerprint and reason). The leading phrase of each reason is stable —
//! "no client certificate", "certificate not pinned", "unknown CA", "expired", "not yet valid",
//! "revoked", "wrong key usage", "bad signature", "protocol version", "not TLS", "handshake
//! timeout" — so operators and tests can match on it.

use rustls::{CertificateError, Error, PeerIncompatible};

/// The reason for a rustls handshake error.
pub(crate) fn describe(error: &Error) -> String {
    match error {
        Error::NoCertificatesPresented => "no client certificate".into(),
        Error::InvalidCertificate(c) => describe_certificate(c),
        Error::PeerIncompatible(p) => describe_incompatible(p),
        Error::InvalidMessage(m) => format!("not TLS or malformed TLS message: {m:?}"),
        Error::AlertReceived(a) => format!("peer aborted the handshake with alert {a:?}"),
        Error::PeerMisbehaved(m) => format!("peer misbehaved: {m:?}"),
        other => format!("handshake failed: {other}"),
    }
}

fn describe_certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::ApplicationVerificationFailure => "certificate not pinned".into(),
        CertificateError::UnknownIssuer => "unknown CA".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not yet valid".into()
        }
        CertificateError::Revoked => "revoked".into(),
        CertificateError::BadSignature => {
            "bad signature: the peer does not hold the certificate's private key".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "wrong key usage: certificate not valid for TLS client authentication".into()
        }
        other => format!("invalid certificate: {other:?}"),
    }
}

fn describe_incompatible(p: &PeerIncompatible) -> String {
    match p {
        PeerIncompatible::Tls12NotOffered
        | PeerIncompatible::Tls12NotOfferedOrEnabled
        | PeerIncompatible::SupportedVersionsExtensionRequired
        | PeerIncompatible::ServerDoesNotSupportTls12Or13 => {
            format!("protocol version: only TLS 1.2 and 1.3 are accepted ({p:?})")
        }
        other => format!("incompatible TLS parameters: {other:?}"),
    }
}

/// The reason for an I/O error out of the handshake (tokio-rustls wraps rustls errors in
/// `io::Error`).
pub(crate) fn describe_io(error: &std::io::Error) -> String {
    if let Some(e) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    {
        return describe(e);
    }
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            "peer closed the connection during the handshake".into()
        }
        _ => format!("handshake I/O error: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_leading_phrases() {
        assert_eq!(
            describe(&Error::NoCertificatesPresented),
            "no client certificate"
        );
        let cert = |c| describe(&Error::InvalidCertificate(c));
        assert_eq!(
            cert(CertificateError::ApplicationVerificationFailure),
            "certificate not pinned"
        );
        assert_eq!(cert(CertificateError::UnknownIssuer), "unknown CA");
        assert_eq!(cert(CertificateError::Expired), "expired");
        assert_eq!(cert(CertificateError::NotValidYet), "not yet valid");
        assert_eq!(cert(CertificateError::Revoked), "revoked");
        assert!(
            describe(&Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered))
                .starts_with("protocol version")
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(describe_io(&io), "unknown CA");
    }
}
