//! Certificate verifiers for the pinned trust model (wire.md §8: GSF pins certificates by file,
//! self-signed is the norm), the per-connection recorder that lets the publisher log which
//! certificate a refused peer presented, and the accept-everything verifier the T7 negative
//! control needs.
//!
//! Pinning replaces chain validation only: the handshake signatures are still verified with the
//! provider's algorithms (so presenting a pinned certificate without its key fails), and the
//! certificate's validity period is still enforced.

use super::fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The handshake-signature methods the pinned verifiers share: pinning replaces certificate
/// validation only, never the check that the peer holds the certificate's key.
/// Expands inside an `impl` of `ClientCertVerifier` or `ServerCertVerifier` for a type with an
/// `algorithms: WebPkiSupportedAlgorithms` field.
macro_rules! handshake_signatures_with_algorithms {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

/// Checks `der`'s notBefore/notAfter against `now`.
pub(crate) fn check_validity(der: &[u8], now: UnixTime) -> Result<(), Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now_secs < validity.not_before.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now_secs > validity.not_after.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// The subject's first common name, if the certificate parses and has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Accepts exactly the end-entity certificates whose SHA-256 is pinned.
fn check_pinned(pins: &HashSet<String>, der: &[u8], now: UnixTime) -> Result<(), Error> {
    if !pins.contains(&fingerprint::sha256_hex(der)) {
        // Mapped to the reason "certificate not pinned" (see `super::reason`); the alert sent is
        // access_denied.
        return Err(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ));
    }
    check_validity(der, now)
}

/// Server side, pinned model: the client must present a pinned, currently valid certificate
/// and prove it holds the key.
#[derive(Debug)]
pub(crate) struct PinnedClientVerifier {
    pub(crate) pins: HashSet<String>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        check_pinned(&self.pins, end_entity, now).map(|()| ClientCertVerified::assertion())
    }

    handshake_signatures_with_algorithms!();
}

/// Client side, pinned model: the publisher must present a pinned, currently valid certificate.
/// The server name is not checked (the pin is a stronger statement than a name).
#[derive(Debug)]
pub(crate) struct PinnedServerVerifier {
    pub(crate) pins: HashSet<String>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        check_pinned(&self.pins, end_entity, now).map(|()| ServerCertVerified::assertion())
    }

    handshake_signatures_with_algorithms!();
}

/// Accepts any client, with or without a certificate. Only for the T7 negative control, which
/// shows that the refusal checks can fail; never reachable from configuration.
#[derive(Debug)]
pub(crate) struct AcceptAnyClient {
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAnyClient {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What one handshake's verifier saw: the presented certificate and, if it was refused there,
/// the verifier's error.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    pub(crate) fingerprint: Option<String>,
    pub(crate) common_name: Option<String>,
    pub(crate) refusal: Option<Error>,
}

/// Wraps the configured verifier for one connection so that a refusal can be logged with the
/// fingerprint of the certificate that caused it (rustls reports only the error).
#[derive(Debug)]
pub(crate) struct Recording {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) seen: Mutex<Seen>,
}

impl Recording {
    pub(crate) fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        Self {
            inner,
            seen: Mutex::new(Seen::default()),
        }
    }

    pub(crate) fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, update: impl FnOnce(&mut Seen)) {
        update(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn note_refusal<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            let e = e.clone();
            self.record(|s| s.refusal = Some(e));
        }
        result
    }
}

impl ClientCertVerifier for Recording {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let fp = fingerprint::sha256_hex(end_entity);
        let cn = common_name(end_entity);
        self.record(|s| {
            s.fingerprint = Some(fp);
            s.common_name = cn;
        });
        self.note_refusal(
            self.inner
                .verify_client_cert(end_entity, intermediates, now),
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.note_refusal(self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.note_refusal(self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
