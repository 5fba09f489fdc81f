//! The accept loop: connection limits, then one task per connection that completes the
//! transport handshake (plain TCP or TLS, [`super::transport`]) and serves the session.

use super::connection::serve_connection;
use super::Shared;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use sttp_proto::response::{code as rsp, encode_response};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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
                Ok((stream, peer)) => {
                    let open = shared.stats.connections_open.load(Relaxed);
                    if open >= shared.config.max_connections {
                        shared.stats.connections_refused.fetch_add(1, Relaxed);
                        tracing::warn!(%peer, open, "connection refused: too many active connections");
                        tasks.spawn(refuse(stream));
                        continue;
                    }
                    shared.stats.connections_accepted.fetch_add(1, Relaxed);
                    shared.stats.connections_open.fetch_add(1, Relaxed);
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        let reason = match shared.transport.accept(stream, peer).await {
                            Ok((stream, identity)) => serve_connection(stream, identity, &shared, shutdown).await,
                            Err(why) => format!("refused by the transport: {why}"),
                        };
                        shared.stats.connections_open.fetch_sub(1, Relaxed);
                        tracing::info!(%peer, %reason, "connection closed");
                    });
                }
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

/// Refuses a connection the way the reference publishers do: Failed(0x00) then close after ~1 s.
async fn refuse(mut stream: TcpStream) {
    let mut frame = Vec::new();
    encode_response(
        &mut frame,
        rsp::FAILED,
        0x00,
        b"Connection refused: too many active connections.",
    );
    let _ = stream.write_all(&frame).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}
