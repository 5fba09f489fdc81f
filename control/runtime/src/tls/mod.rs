//! TLS with mutual X.509 authentication on the command channel (wire.md §8; GSF's TlsServer,
//! default port 7167). The STTP framing inside is unchanged.
//!
//! Two trust models, on both sides: pinned certificates compared by SHA-256 fingerprint (GSF's
//! model, self-signed certificates from `sttp cert new`), or a private CA with chain validation
//! and CRLs. rustls with the ring provider; TLS 1.2 and 1.3 only.

pub mod client;
pub mod fingerprint;
pub mod pem;
mod reason;
pub mod server;
mod verify;

pub use client::{ClientIdentity, ServerTrust, TlsClientSettings};
pub use server::{ClientTrust, TlsServer, TlsServerSettings};
pub use verify::common_name;

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;
use std::sync::Arc;
use std::time::Duration;

/// GSF's TLS command-channel port.
pub const DEFAULT_TLS_PORT: u16 = 7167;
/// `sttp serve --tls` listens here unless told otherwise.
pub const DEFAULT_TLS_LISTEN: &str = "127.0.0.1:7167";
/// Time a peer has from TCP accept to a completed TLS handshake; a stalled or half-open
/// handshake is closed after it so it cannot hold a connection slot. Shorter than the
/// listener's overall transport limit (10 s by default) so that a stalled handshake is logged
/// here, as a security event with its reason.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(8);

/// TLS 1.3 and 1.2; nothing older (test-plan T7 refuses TLS 1.0/1.1 hellos).
pub(crate) static VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ring provider (design.md: no aws-lc).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
