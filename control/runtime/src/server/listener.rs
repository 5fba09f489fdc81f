//! The accept loop: admission (throttled sources, per-source and total connection limits,
//! [`super::limits`]), then one task per connection that completes the transport handshake
//! (plain TCP or TLS, [`super::transport`]) within the handshake timeout and serves the session.
//! Accepted connections get TCP keep-alive and TCP_USER_TIMEOUT from the limits first
//! (docs/liveness.md).

use super::close::{CloseReason, RefusalKind};
use super::connection::serve_connection;
use super::limits::{Fault, Refusal};
use super::Shared;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_proto::response::{code as rsp, encode_response};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a refused connection is kept open after its Failed(0x00), so the response is read
/// before the close (the reference publishers wait ~1 s).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &shared, &shutdown, &mut tasks),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

/// Decides on one accepted connection and spawns what serves or refuses it.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let guard = match shared.sources.admit(peer.ip(), Instant::now()) {
        Ok(guard) => guard,
        Err(Refusal::Throttled { .. }) => {
            // Already alerted once for this incident; close at once, no bytes, no log line.
            shared.stats.refused_throttled.fetch_add(1, Relaxed);
            shared.stats.closes.count_refusal(RefusalKind::Throttled);
            drop(stream);
            return;
        }
        Err(Refusal::TooManyFromSource { open }) => {
            shared.stats.refused_per_source.fetch_add(1, Relaxed);
            shared
                .stats
                .closes
                .count_refusal(RefusalKind::TooManyFromSource);
            tracing::warn!(%peer, open, "connection refused: too many connections from this source");
            tasks.spawn(refuse(
                stream,
                b"Connection refused: too many active connections from this address.",
            ));
            return;
        }
    };
    let open = shared.stats.connections_open.load(Relaxed);
    if open >= shared.config.max_connections {
        shared.stats.connections_refused.fetch_add(1, Relaxed);
        shared
            .stats
            .closes
            .count_refusal(RefusalKind::TooManyConnections);
        tracing::warn!(%peer, open, "connection refused: too many active connections");
        tasks.spawn(refuse(
            stream,
            b"Connection refused: too many active connections.",
        ));
        return;
    }
    shared.stats.connections_accepted.fetch_add(1, Relaxed);
    shared.stats.connections_open.fetch_add(1, Relaxed);
    if let Err(e) = set_liveness(&stream, &shared.config.limits) {
        tracing::warn!(%peer, error = %e, "cannot set TCP keep-alive / user timeout on a connection");
    }
    let shared = shared.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let _slot = guard;
        let timeout = shared.config.limits.handshake_timeout;
        let reason =
            match tokio::time::timeout(timeout, shared.transport.accept(stream, peer)).await {
                Ok(Ok((stream, identity))) => {
                    serve_connection(stream, identity, &shared, shutdown).await
                }
                Ok(Err(why)) => {
                    shared.peer_fault(peer, Fault::TransportRefused);
                    CloseReason::TransportRefused(why.to_string())
                }
                Err(_) => {
                    shared.peer_fault(peer, Fault::HandshakeTimeout);
                    CloseReason::HandshakeTimeout(timeout)
                }
            };
        shared.stats.connections_open.fetch_sub(1, Relaxed);
        shared.stats.closes.count_close(&reason);
        if reason.is_fault() {
            tracing::warn!(%peer, kind = reason.label(), %reason, "connection closed");
        } else {
            tracing::info!(%peer, kind = reason.label(), %reason, "connection closed");
        }
    });
}

/// The kernel's dead-peer detection on an accepted connection (docs/liveness.md): keep-alive
/// probes after `tcp_keepalive_idle` of silence, and TCP_USER_TIMEOUT, which drops the
/// connection when sent data stays unacknowledged (or a zero window stays shut) that long.
fn set_liveness(stream: &TcpStream, limits: &super::Limits) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    if let Some(idle) = limits.tcp_keepalive_idle {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(limits.tcp_keepalive_interval)
            .with_retries(limits.tcp_keepalive_probes);
        socket.set_tcp_keepalive(&keepalive)?;
    }
    if limits.tcp_user_timeout.is_some() {
        socket.set_tcp_user_timeout(limits.tcp_user_timeout)?;
    }
    Ok(())
}

/// Refuses a connection the way the reference publishers do: Failed(0x00) then close after ~1 s.
async fn refuse(mut stream: TcpStream, message: &'static [u8]) {
    let mut frame = Vec::new();
    encode_response(&mut frame, rsp::FAILED, 0x00, message);
    let _ = stream.write_all(&frame).await;
    tokio::time::sleep(REFUSAL_LINGER).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_get_the_configured_keepalive_and_user_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let socket = socket2::SockRef::from(&stream);
        assert!(!socket.keepalive().unwrap());
        assert_eq!(socket.tcp_user_timeout().unwrap(), None);
        let limits = super::super::Limits::default();
        set_liveness(&stream, &limits).unwrap();
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(20))
        );
        // Off: nothing is set.
        let (stream2, _) = {
            let _c = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            listener.accept().await.unwrap()
        };
        let off = super::super::Limits {
            tcp_keepalive_idle: None,
            tcp_user_timeout: None,
            ..super::super::Limits::default()
        };
        set_liveness(&stream2, &off).unwrap();
        let socket2 = socket2::SockRef::from(&stream2);
        assert!(!socket2.keepalive().unwrap());
        assert_eq!(socket2.tcp_user_timeout().unwrap(), None);
    }
}
