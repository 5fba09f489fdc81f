//! The command channel's transport: what a freshly accepted TCP connection must complete before
//! the STTP session starts, and the identity that handshake proved.
//!
//! Nothing of the session (not even the operational-modes reply) runs before [`Transport::accept`]
//! returns, so a refused peer never sees an application byte.

use crate::identity::PeerIdentity;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the session can run over (plain TCP or TLS).
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerStream for T {}

/// A boxed [`PeerStream`].
pub type BoxedStream = Box<dyn PeerStream>;

/// How connections are secured.
#[derive(Debug, Clone, Default)]
pub enum Transport {
    /// Plain TCP: the identity is the address alone.
    #[default]
    Plain,
    /// Mutual TLS (wire.md §8): the identity adds the verified client certificate.
    Tls(std::sync::Arc<crate::tls::TlsServer>),
}

impl Transport {
    /// Completes the transport handshake. `Err` carries the reason the peer was refused (for the
    /// log); the connection is then closed without a byte of STTP.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<(BoxedStream, PeerIdentity), String> {
        let _ = tcp.set_nodelay(true);
        match self {
            Transport::Plain => Ok((Box::new(tcp), PeerIdentity::address_only(peer))),
            Transport::Tls(server) => {
                let (stream, identity) = server.accept(tcp, peer).await?;
                Ok((Box::new(stream), identity))
            }
        }
    }
}
