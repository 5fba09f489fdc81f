//! One subscriber connection: a reader loop feeding the sans-IO [`PublisherSession`], a writer
//! task draining the connection's bounded frame queue, and the data-plane subscription the
//! session's Activate/Deactivate outputs drive.

use super::budget::{BudgetSink, SessionBudget, FRAMES_PER_TURN, READ_BUF_MAX, READ_BUF_START};
use super::close::CloseReason;
use super::command_pool::CpuBudget;
use super::data_channel::{DataChannel, Effects};
use super::limits::Fault;
use super::transport::BoxedStream;
use super::writer;
use super::LegacyCipherKeys;
use super::{
    read, Shared, CONTROL_SEND_TIMEOUT, FIRST_FRAME_LIMIT, HANDSHAKE_TIMEOUT, KEEPALIVE,
    MAX_COMMAND_FRAME,
};
use crate::clock::now_ticks;
use crate::identity::PeerIdentity;
use crate::sink::ChannelSink;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_dataplane::{SubscriptionHandle, SubscriptionSpec};
use sttp_proto::catalog::Catalog;
use sttp_proto::command::code as cmd;
use sttp_proto::framing::FrameDecoder;
use sttp_proto::peer_text::PeerText;
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Writes the data channel's frames, queues its responses on the session and logs its lines;
/// `Err` when the subscriber's queue stays full.
async fn apply_effects(
    session: &mut PublisherSession,
    peer: SocketAddr,
    tx: &mpsc::Sender<Vec<u8>>,
    fx: Effects,
) -> Result<(), CloseReason> {
    for frame in fx.frames {
        if tx.send_timeout(frame, CONTROL_SEND_TIMEOUT).await.is_err() {
            return Err(CloseReason::SlowConsumer);
        }
    }
    if let Some(in_use) = fx.keys_in_use {
        session.set_cipher_keys_in_use(in_use);
    }
    for (code, command, data) in fx.responses {
        session.send_user_response(code, command, &data);
    }
    for line in fx.logs {
        tracing::info!(%peer, "{line}");
    }
    Ok(())
}

pub(super) async fn serve_connection(
    stream: BoxedStream,
    identity: PeerIdentity,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> CloseReason {
    let peer = identity.addr;
    // Access control decides before the session exists, so an unknown peer gets no STTP byte.
    // Evaluating a policy's filters can cost milliseconds: on the command pool.
    let start = {
        let control = shared.config.access.clone();
        let catalog = read_catalog(shared);
        let identity = identity.clone();
        move || {
            crate::access::ConnectionAccess::start(
                control.as_ref(),
                &identity,
                catalog,
                now_ticks(),
            )
        }
    };
    let mut cpu = CpuBudget::new(
        shared.config.commands.cpu_burst,
        shared.config.commands.cpu_rate,
    );
    let started = match &shared.commands {
        Some(pool) if shared.config.access.is_some() => match pool.run(peer.ip(), start).await {
            Ok((started, used)) => {
                let _ = cpu.charge(used, Instant::now());
                started
            }
            Err(_) => return CloseReason::CommandPoolClosed,
        },
        _ => start(),
    };
    let mut access = match started {
        Ok(a) => a,
        Err(reason) => return CloseReason::AccessDenied(reason),
    };
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(shared.config.subscriber_queue_frames.max(16));
    let budget = SessionBudget::new(shared.config.limits.session_memory_budget);
    let stall = shared.config.limits.send_stall_timeout;
    let mut writer = tokio::spawn(writer::run(rx, wr, budget.clone(), stall));
    let (mut writer_end, mut read_error) = (None, None);
    tracing::info!(%peer, "subscriber connected");
    let handle: SubscriptionHandle = shared.engine.add_subscription(SubscriptionSpec {
        sink: Box::new(BudgetSink::new(ChannelSink(tx.clone()), budget.clone())),
    });
    {
        let mut subs = shared
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // Forget closed sessions here too, not only when someone asks for the stats: each
        // Weak keeps its stats allocation, so the list would otherwise grow with every connect.
        subs.retain(|(_, w)| w.strong_count() > 0);
        subs.push((peer, Arc::downgrade(handle.stats())));
    }
    let mut session = PublisherSession::new(PublisherSessionConfig {
        subscriber_id: Uuid::new_v4(),
        publisher_name: shared.config.name.clone(),
    });
    let mut framer = FrameDecoder::new(MAX_COMMAND_FRAME).with_first_frame_limit(FIRST_FRAME_LIMIT);
    let mut buf = vec![0u8; READ_BUF_START];
    let mut frames_pending = false;
    let first_command = tokio::time::sleep(shared.config.limits.first_command_timeout);
    tokio::pin!(first_command);
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let handshake = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(handshake);
    let mut config_changed = shared.config_changed.subscribe();
    let mut channel = DataChannel::new(handle, peer, shared.config.key_rotation);
    session.set_legacy_cipher_keys_offered(match shared.config.legacy_cipher_keys {
        LegacyCipherKeys::Off => false,
        LegacyCipherKeys::WhenTls => identity.certificate.is_some(),
        LegacyCipherKeys::Always => true,
    });
    let reason = 'conn: loop {
        tokio::select! {
            _ = shutdown.changed() => break 'conn CloseReason::Shutdown,
            // The writer ended (dead peer, write error): the reason comes from its end below.
            end = &mut writer => {
                let end = writer::joined(end);
                let reason = writer::ended_first(&end);
                writer_end = Some(end);
                break 'conn reason;
            }
            _ = &mut handshake, if session.phase() == sttp_proto::session::publisher::Phase::AwaitingModes => {
                break 'conn CloseReason::NoModes(HANDSHAKE_TIMEOUT);
            }
            _ = &mut first_command, if framer.frames_decoded() == 0 => {
                shared.peer_fault(peer, Fault::FirstCommandTimeout);
                break 'conn CloseReason::FirstCommandTimeout(shared.config.limits.first_command_timeout);
            }
            _ = keepalive.tick() => session.handle_keepalive(),
            _ = sleep_until(channel.next_wakeup()) => {
                let fx = channel.tick(Instant::now());
                if let Err(reason) = apply_effects(&mut session, peer, &tx, fx).await {
                        break 'conn reason;
                    }
            }
            Ok(()) = config_changed.changed() => session.notify_configuration_changed(),
            // Buffered frames go first; reading resumes once they are handled, so a burst of
            // commands is processed FRAMES_PER_TURN at a time, each turn's responses queued
            // (against the memory budget) before the next turn is decoded.
            _ = std::future::ready(()), if frames_pending => {}
            read = rd.read(&mut buf), if !frames_pending => {
                let n = match read {
                    Ok(0) => break 'conn CloseReason::PeerClosed,
                    Ok(n) => n,
                    Err(e) => {
                        read_error = Some(e.kind());
                        break 'conn CloseReason::ReadFailed(e.to_string());
                    }
                };
                framer.push(buf.get(..n).unwrap_or_default());
                if n == buf.len() && buf.len() < READ_BUF_MAX {
                    buf.resize(READ_BUF_MAX, 0);
                }
                frames_pending = true;
            }
        }
        if frames_pending {
            let mut frames = Vec::new();
            let mut bad_frame = None;
            while frames.len() < FRAMES_PER_TURN {
                match framer.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => {
                        frames_pending = false;
                        break;
                    }
                    Err(e) => {
                        bad_frame = Some(e);
                        break;
                    }
                }
            }
            let full = read_catalog(shared);
            // Commands that can cost milliseconds (filters over the metadata, metadata
            // serialisation and gzip, access re-evaluation) run on the command pool.
            let heavy = !access.is_current(&full) || frames.iter().any(|f| is_heavy(f));
            let result = match &shared.commands {
                Some(pool) if heavy => {
                    let mut s = session;
                    let mut a = access;
                    let job = move || {
                        let r = handle_turn(&mut s, &mut a, full, &frames);
                        (s, a, r)
                    };
                    match pool.run(peer.ip(), job).await {
                        Ok(((s, a, r), used)) => {
                            session = s;
                            access = a;
                            shared.stats.command_cpu_us.fetch_add(
                                u64::try_from(used.as_micros()).unwrap_or(u64::MAX),
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            match cpu.charge(used, Instant::now()) {
                                Ok(()) => r,
                                Err(used) => {
                                    shared.peer_fault(peer, Fault::CpuBudget);
                                    break 'conn CloseReason::CpuBudget { used };
                                }
                            }
                        }
                        Err(_) => break 'conn CloseReason::CommandPoolClosed,
                    }
                }
                _ => handle_turn(&mut session, &mut access, full, &frames),
            };
            if let Err(reason) = result {
                break 'conn CloseReason::AccessDenied(reason);
            }
            if let Some(e) = bad_frame {
                let (fault, message) = (
                    match e {
                        sttp_proto::error::ProtoError::FrameTooLarge { .. } => Fault::Oversized,
                        _ => Fault::Protocol,
                    },
                    e.failed_message(),
                );
                shared.peer_fault(peer, fault);
                break 'conn match fault {
                    Fault::Oversized => CloseReason::Oversized(message),
                    _ => CloseReason::Protocol(message),
                };
            }
            let held = framer.buffered().saturating_add(budget.queued());
            if held > budget.limit() {
                shared.peer_fault(peer, Fault::MemoryBudget);
                break 'conn CloseReason::MemoryBudget {
                    held,
                    limit: budget.limit(),
                };
            }
        }
        while let Some(out) = session.poll_output() {
            match out {
                PublisherOutput::Send(bytes) => {
                    if !budget.try_reserve(bytes.len(), framer.buffered()) {
                        shared.peer_fault(peer, Fault::MemoryBudget);
                        break 'conn CloseReason::MemoryBudget {
                            held: budget.queued().saturating_add(bytes.len()),
                            limit: budget.limit(),
                        };
                    }
                    if tx.send_timeout(bytes, CONTROL_SEND_TIMEOUT).await.is_err() {
                        break 'conn CloseReason::SlowConsumer;
                    }
                }
                PublisherOutput::Activate {
                    routes,
                    cache_index,
                    settings,
                    modes,
                } => {
                    let fx = channel.activate(routes, cache_index, settings, modes, Instant::now());
                    if let Err(reason) = apply_effects(&mut session, peer, &tx, fx).await {
                        break 'conn reason;
                    }
                }
                PublisherOutput::Deactivate => channel.deactivate(),
                PublisherOutput::ProcessingInterval(ms) => channel.processing_interval(ms),
                PublisherOutput::StartLegacyCipherKeys => {
                    let fx = channel.start_legacy(Instant::now());
                    if let Err(reason) = apply_effects(&mut session, peer, &tx, fx).await {
                        break 'conn reason;
                    }
                }
                PublisherOutput::RotateCipherKeys => {
                    let fx = channel.rotate(Instant::now());
                    if let Err(reason) = apply_effects(&mut session, peer, &tx, fx).await {
                        break 'conn reason;
                    }
                }
                PublisherOutput::UserCommand { code, data } => {
                    if let Some(fx) = channel.user_command(code, &data, Instant::now()) {
                        if let Err(reason) = apply_effects(&mut session, peer, &tx, fx).await {
                            break 'conn reason;
                        }
                        continue;
                    }
                    let handler = read(&shared.user_commands);
                    let answer = handler.and_then(|h| h(peer, code, &data));
                    match answer {
                        Some((response, data)) => session.send_user_response(response, code, &data),
                        None => {
                            tracing::info!(%peer, code = format!("0x{code:02X}"), bytes = data.len(), "user command (no handler answered)");
                        }
                    }
                }
                PublisherOutput::Log(message) => {
                    tracing::info!(%peer, "{}", PeerText::log(&message))
                }
                PublisherOutput::Close { reason } => {
                    shared.peer_fault(peer, Fault::Protocol);
                    // Let the Failed response reach the subscriber before closing (~1 s, as
                    // the reference publishers do).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break 'conn CloseReason::Session(PeerText::log(&reason).to_string());
                }
            }
        }
    };
    drop(channel);
    drop(tx);
    let end = match writer_end {
        Some(end) => end,
        None => writer::finish(writer).await,
    };
    writer::conclude(shared, peer, reason, read_error, end, &budget)
}

/// True for the commands whose handling can cost milliseconds of CPU.
fn is_heavy(frame: &[u8]) -> bool {
    matches!(
        frame.first().copied(),
        Some(cmd::SUBSCRIBE | cmd::METADATA_REFRESH)
    )
}

/// Handles one turn of command frames against the catalog access control allows now
/// (re-evaluated after a policy reload or a metadata change). `Err` is the access-control
/// reason to close the connection.
fn handle_turn(
    session: &mut PublisherSession,
    access: &mut crate::access::ConnectionAccess,
    full: Arc<Catalog>,
    frames: &[Vec<u8>],
) -> Result<(), String> {
    let catalog = access.catalog(full, now_ticks())?;
    for frame in frames {
        session.handle_frame(frame, &catalog, now_ticks());
        if session.phase() == sttp_proto::session::publisher::Phase::Closed {
            break;
        }
    }
    Ok(())
}

pub(super) fn read_catalog(shared: &Shared) -> Arc<Catalog> {
    read(&shared.catalog)
}
