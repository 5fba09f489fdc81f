//! The subscriber's side of TLS on the command channel (wire.md §8): present our certificate,
//! and trust the publisher either by pinned fingerprint (no name check — the pin is the
//! identity) or through a CA (the usual name check against the host, or an override).

use super::verify::PinnedServerVerifier;
use super::{provider, VERSIONS};
use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How the subscriber decides the publisher is genuine.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// The publisher's certificate SHA-256 must be one of these (canonical form).
    Pinned {
        /// Canonical fingerprints.
        fingerprints: HashSet<String>,
    },
    /// The publisher's certificate must chain to one of these CAs and name the host.
    Ca {
        /// Trusted CA certificates.
        roots: Vec<CertificateDer<'static>>,
    },
}

/// The subscriber's own certificate and key.
#[derive(Debug)]
pub struct ClientIdentity {
    /// Certificate chain, end entity first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Private key.
    pub key: PrivateKeyDer<'static>,
}

/// TLS settings of a subscriber connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsClientSettings {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl TlsClientSettings {
    /// Builds the client configuration. `identity` is required by every STTP publisher with
    /// TLS (mutual authentication); `None` only makes sense for testing refusals.
    pub fn new(identity: Option<ClientIdentity>, trust: ServerTrust) -> anyhow::Result<Self> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(VERSIONS)
            .context("the crypto provider does not support TLS 1.2/1.3")?;
        let builder = match trust {
            ServerTrust::Pinned { fingerprints } => {
                anyhow::ensure!(
                    !fingerprints.is_empty(),
                    "pinning the publisher needs at least one certificate or fingerprint"
                );
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier {
                        pins: fingerprints,
                        algorithms: provider.signature_verification_algorithms,
                    }))
            }
            ServerTrust::Ca { roots } => {
                anyhow::ensure!(!roots.is_empty(), "TLS CA trust needs a CA certificate");
                let mut store = RootCertStore::empty();
                for root in roots {
                    store
                        .add(root)
                        .context("the CA certificate cannot be used as a trust anchor")?;
                }
                builder.with_root_certificates(store)
            }
        };
        let config = match identity {
            Some(id) => builder
                .with_client_auth_cert(id.cert_chain, id.key)
                .context("the subscriber's private key does not fit its certificate")?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self::from_client_config(Arc::new(config)))
    }

    /// Uses a ready rustls configuration as is (tests build deliberately broken clients so).
    #[doc(hidden)]
    pub fn from_client_config(config: Arc<ClientConfig>) -> Self {
        Self {
            config,
            server_name: None,
        }
    }

    /// Checks the publisher's certificate against `name` instead of the host part of the
    /// address (CA mode; pinned mode ignores names).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Runs the handshake over a connected socket; `address` is the `HOST:PORT` that was
    /// dialled (its host is the name checked in CA mode).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        address: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| host_of(address).to_owned());
        let name = ServerName::try_from(name.clone()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a valid TLS server name: {e}"),
            )
        })?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// Connects the subscriber's command channel: TCP (bounded by `timeout`), then the TLS
/// handshake when `tls` is set (bounded by the same timeout again). `Err` says which step failed.
pub(crate) async fn open(
    address: &str,
    timeout: std::time::Duration,
    tls: Option<&TlsClientSettings>,
) -> Result<crate::server::transport::BoxedStream, String> {
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("connect to {address} failed: {e}")),
        Err(_) => return Err(format!("connect to {address} timed out")),
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    match tokio::time::timeout(timeout, tls.connect(tcp, address)).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(format!("TLS handshake with {address} failed: {e}")),
        Err(_) => Err(format!("TLS handshake with {address} timed out")),
    }
}

/// The host of `HOST:PORT`, `[v6]:PORT` or a bare host.
fn host_of(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => address,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7167"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7167"), "::1");
        assert_eq!(host_of("pub.example:7167"), "pub.example");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
