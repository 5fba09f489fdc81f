//! One subscriber connection: a reader loop feeding the sans-IO [`PublisherSession`], a writer
//! task draining the connection's bounded frame queue, and the data-plane subscription the
//! session's Activate/Deactivate outputs drive.

use super::settings::encoder_settings;
use super::transport::BoxedStream;
use super::{
    read, Shared, CONTROL_SEND_TIMEOUT, FIRST_FRAME_LIMIT, HANDSHAKE_TIMEOUT, KEEPALIVE,
    MAX_COMMAND_FRAME,
};
use crate::clock::now_ticks;
use crate::identity::PeerIdentity;
use crate::sink::ChannelSink;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use sttp_dataplane::{SubscriptionHandle, SubscriptionSpec};
use sttp_proto::catalog::Catalog;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::framing::FrameDecoder;
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// The last activation, kept to re-apply a new processing interval.
struct Active {
    routes: Vec<(u32, i32)>,
    cache_index: u8,
    settings: Box<SubscriptionSettings>,
    modes: OperationalModes,
}

pub(super) async fn serve_connection(
    stream: BoxedStream,
    identity: PeerIdentity,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let peer = identity.addr;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(shared.config.subscriber_queue_frames.max(16));
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if let Err(e) = wr.write_all(&bytes).await {
                return format!("write failed: {e}");
            }
        }
        let _ = wr.shutdown().await;
        String::new()
    });
    tracing::info!(%peer, "subscriber connected");
    let handle: SubscriptionHandle = shared.engine.add_subscription(SubscriptionSpec {
        sink: Box::new(ChannelSink(tx.clone())),
    });
    shared
        .subscriptions
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push((peer, Arc::downgrade(handle.stats())));
    let mut session = PublisherSession::new(PublisherSessionConfig {
        subscriber_id: Uuid::new_v4(),
        publisher_name: shared.config.name.clone(),
    });
    let mut framer = FrameDecoder::new(MAX_COMMAND_FRAME).with_first_frame_limit(FIRST_FRAME_LIMIT);
    let mut buf = vec![0u8; 64 * 1024];
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let handshake = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(handshake);
    let mut config_changed = shared.config_changed.subscribe();
    let mut active: Option<Active> = None;
    let mut processing_interval = -1;
    let reason = 'conn: loop {
        tokio::select! {
            _ = shutdown.changed() => break 'conn "publisher shutting down".to_string(),
            _ = &mut handshake, if session.phase() == sttp_proto::session::publisher::Phase::AwaitingModes => {
                break 'conn format!("no operational modes within {} s", HANDSHAKE_TIMEOUT.as_secs());
            }
            _ = keepalive.tick() => session.handle_keepalive(),
            Ok(()) = config_changed.changed() => session.notify_configuration_changed(),
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break 'conn "subscriber closed the connection".to_string(),
                    Ok(n) => n,
                    Err(e) => break 'conn format!("read failed: {e}"),
                };
                framer.push(buf.get(..n).unwrap_or_default());
                let catalog = read_catalog(shared);
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => session.handle_frame(&frame, &catalog, now_ticks()),
                        Ok(None) => break,
                        Err(e) => {
                            shared.stats.protocol_closes.fetch_add(1, Relaxed);
                            break 'conn format!("protocol error: {}", e.failed_message());
                        }
                    }
                    if session.phase() == sttp_proto::session::publisher::Phase::Closed {
                        break;
                    }
                }
            }
        }
        while let Some(out) = session.poll_output() {
            match out {
                PublisherOutput::Send(bytes) => {
                    if tx.send_timeout(bytes, CONTROL_SEND_TIMEOUT).await.is_err() {
                        break 'conn "slow consumer: response queue full".to_string();
                    }
                }
                PublisherOutput::Activate {
                    routes,
                    cache_index,
                    settings,
                    modes,
                } => {
                    if settings.processing_interval != -1 {
                        processing_interval = settings.processing_interval;
                    }
                    handle.activate(
                        routes.clone(),
                        cache_index,
                        encoder_settings(&settings, modes, processing_interval),
                    );
                    active = Some(Active {
                        routes,
                        cache_index,
                        settings,
                        modes,
                    });
                }
                PublisherOutput::Deactivate => {
                    active = None;
                    handle.deactivate();
                }
                PublisherOutput::ProcessingInterval(ms) => {
                    processing_interval = ms;
                    if let Some(a) = &active {
                        handle.activate(
                            a.routes.clone(),
                            a.cache_index,
                            encoder_settings(&a.settings, a.modes, ms),
                        );
                    }
                }
                PublisherOutput::UserCommand { code, data } => {
                    let handler = read(&shared.user_commands);
                    let answer = handler.and_then(|h| h(peer, code, &data));
                    match answer {
                        Some((response, data)) => session.send_user_response(response, code, &data),
                        None => {
                            tracing::info!(%peer, code = format!("0x{code:02X}"), bytes = data.len(), "user command (no handler answered)")
                        }
                    }
                }
                PublisherOutput::Log(message) => tracing::info!(%peer, "{message}"),
                PublisherOutput::Close { reason } => {
                    shared.stats.protocol_closes.fetch_add(1, Relaxed);
                    // Let the Failed response reach the subscriber before closing (~1 s, as
                    // the reference publishers do).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break 'conn reason;
                }
            }
        }
    };
    drop(handle);
    drop(tx);
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    reason
}

pub(super) fn read_catalog(shared: &Shared) -> Arc<Catalog> {
    read(&shared.catalog)
}
