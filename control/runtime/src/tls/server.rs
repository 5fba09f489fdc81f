//! The publisher's side of TLS on the command channel (wire.md §8): mutual authentication with
//! either pinned certificates (GSF's model: SHA-256 of the DER) or a private CA (chain
//! validation with optional CRLs). TLS 1.2 and 1.3 only, no session resumption — every
//! connection's certificate is checked afresh, so a removed pin or a new CRL takes effect on the
//! next connection.
//!
//! Nothing of STTP runs before [`TlsServer::accept`] returns, so a refused peer gets no
//! application byte. Every outcome is logged as a security event: `warn` with peer address,
//! fingerprint (when a certificate was presented) and reason on failure; `info` with fingerprint
//! and subject CN on success.

use super::reason::{describe, describe_io};
use super::verify::{AcceptAnyClient, PinnedClientVerifier, Recording};
use super::{fingerprint, provider, HANDSHAKE_TIMEOUT, VERSIONS};
use crate::identity::{CertificateIdentity, PeerIdentity};
use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1, content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Which subscribers the publisher accepts.
#[derive(Debug, Clone)]
pub enum ClientTrust {
    /// Certificates whose SHA-256 (canonical form, see [`fingerprint`]) is in the set.
    Pinned {
        /// Canonical fingerprints.
        fingerprints: HashSet<String>,
    },
    /// Certificates that chain to one of `roots` and are not revoked by `crls`.
    Ca {
        /// Trusted CA certificates.
        roots: Vec<CertificateDer<'static>>,
        /// Revocation lists (each must be signed by a trusted CA).
        crls: Vec<CertificateRevocationListDer<'static>>,
    },
}

/// Everything a [`TlsServer`] needs.
#[derive(Debug)]
pub struct TlsServerSettings {
    /// The publisher's certificate chain, end entity first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The publisher's private key.
    pub key: PrivateKeyDer<'static>,
    /// Which subscribers to accept.
    pub trust: ClientTrust,
}

/// A configured TLS acceptor for the command channel.
pub struct TlsServer {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ClientCertVerifier>,
    certificate: Arc<SingleCertAndKey>,
    fingerprint: String,
    handshake_timeout: Duration,
    description: String,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("certificate_sha256", &self.fingerprint)
            .field("trust", &self.description)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Builds the acceptor; fails when the key does not match the certificate, a CA or CRL is
    /// unusable, or no subscriber could ever be accepted (empty pin set).
    pub fn new(settings: TlsServerSettings) -> anyhow::Result<Self> {
        let provider = provider();
        let algorithms = provider.signature_verification_algorithms;
        let (verifier, description): (Arc<dyn ClientCertVerifier>, String) = match settings.trust {
            ClientTrust::Pinned { fingerprints } => {
                anyhow::ensure!(
                    !fingerprints.is_empty(),
                    "TLS pinned mode needs at least one allowed certificate or fingerprint"
                );
                let description = format!("{} pinned certificate(s)", fingerprints.len());
                (
                    Arc::new(PinnedClientVerifier {
                        pins: fingerprints,
                        algorithms,
                    }),
                    description,
                )
            }
            ClientTrust::Ca { roots, crls } => {
                anyhow::ensure!(!roots.is_empty(), "TLS CA mode needs a CA certificate");
                let description = format!("{} CA(s), {} CRL(s)", roots.len(), crls.len());
                let mut store = RootCertStore::empty();
                for root in roots {
                    store
                        .add(root)
                        .context("the CA certificate cannot be used as a trust anchor")?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .with_crls(crls)
                        .build()
                        .context("cannot build the client certificate verifier")?;
                (verifier, description)
            }
        };
        Self::assemble(
            provider,
            verifier,
            settings.cert_chain,
            settings.key,
            description,
        )
    }

    /// A server that accepts *every* client, with or without a certificate. Exists only so the
    /// T7 tests can show their refusal checks are able to fail (the negative control).
    #[doc(hidden)]
    pub fn accept_any_client_for_tests(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<Self> {
        let provider = provider();
        let verifier = Arc::new(AcceptAnyClient {
            algorithms: provider.signature_verification_algorithms,
        });
        Self::assemble(
            provider,
            verifier,
            cert_chain,
            key,
            "ANY CLIENT (test only)".into(),
        )
    }

    fn assemble(
        provider: Arc<CryptoProvider>,
        verifier: Arc<dyn ClientCertVerifier>,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        description: String,
    ) -> anyhow::Result<Self> {
        let fingerprint = cert_chain
            .first()
            .map(|c| fingerprint::sha256_hex(c))
            .context("the publisher's certificate file holds no certificate")?;
        let certified = CertifiedKey::from_der(cert_chain, key, &provider)
            .context("the publisher's private key does not fit its certificate")?;
        let server = Self {
            provider,
            verifier,
            certificate: Arc::new(SingleCertAndKey::from(certified)),
            fingerprint,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            description,
        };
        // Fail at start, not at the first connection, if the combination is unusable.
        server.config(Arc::new(Recording::new(server.verifier.clone())))?;
        Ok(server)
    }

    /// Changes the time a peer has to complete the handshake (default [`HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// SHA-256 of the publisher's own certificate (canonical form), for subscribers to pin.
    pub fn certificate_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The trust model in words, for the startup log.
    pub fn trust_description(&self) -> &str {
        &self.description
    }

    fn config(&self, verifier: Arc<Recording>) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(VERSIONS)
            .context("the crypto provider does not support TLS 1.2/1.3")?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.certificate.clone());
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(config)
    }

    /// Runs the handshake on a freshly accepted connection (bounded by the handshake timeout).
    /// `Err` carries the reason, already logged as a security event.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<(TlsStream<TcpStream>, PeerIdentity), String> {
        let recorder = Arc::new(Recording::new(self.verifier.clone()));
        let handshake = self.handshake(tcp, recorder.clone());
        let outcome = match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "handshake timeout: not completed within {:.1} s",
                self.handshake_timeout.as_secs_f64()
            )),
        };
        let seen = recorder.seen();
        match outcome {
            Ok(stream) => {
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|der| CertificateIdentity {
                        fingerprint_sha256: fingerprint::sha256_hex(der),
                        common_name: super::verify::common_name(der),
                    });
                match &certificate {
                    Some(c) => tracing::info!(
                        event = "tls_auth_success",
                        %peer,
                        fingerprint = %c.fingerprint_sha256,
                        cn = %c.common_name.as_deref().unwrap_or("-"),
                        "TLS client authenticated"
                    ),
                    None => tracing::warn!(
                        event = "tls_auth_success",
                        %peer,
                        "TLS client accepted WITHOUT a certificate (test-only verifier)"
                    ),
                }
                Ok((
                    stream,
                    PeerIdentity {
                        addr: peer,
                        certificate,
                    },
                ))
            }
            Err(reason) => {
                // The verifier's own refusal is more precise than the alert-level error.
                let reason = seen.refusal.as_ref().map(describe).unwrap_or(reason);
                tracing::warn!(
                    event = "tls_auth_failure",
                    %peer,
                    fingerprint = %seen.fingerprint.as_deref().unwrap_or("-"),
                    cn = %seen.common_name.as_deref().unwrap_or("-"),
                    %reason,
                    "TLS client refused"
                );
                Err(reason)
            }
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        recorder: Arc<Recording>,
    ) -> Result<TlsStream<TcpStream>, String> {
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => return Err("peer closed the connection before the handshake".into()),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                return Err(format!(
                    "not TLS: first byte 0x{:02X}, a TLS handshake starts with 0x16",
                    first[0]
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("handshake I/O error: {e}")),
        }
        let config = self.config(recorder).map_err(|e| format!("{e:#}"))?;
        TlsAcceptor::from(Arc::new(config))
            .accept(tcp)
            .await
            .map_err(|e| describe_io(&e))
    }
}
