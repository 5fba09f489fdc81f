//! The publisher: a TCP listener, one task pair (reader + writer) per connection, a sans-IO
//! [`PublisherSession`] per connection, and the data-plane engine that encodes and fans out.

use crate::clock::now_ticks;
use crate::sink::ChannelSink;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use sttp_dataplane::encoder::{EncoderSettings, Format, Throttle};
use sttp_dataplane::{Engine, EngineConfig, SourceHandle, SubscriptionHandle, SubscriptionSpec};
use sttp_proto::catalog::Catalog;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::framing::FrameDecoder;
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::response::{code as rsp, encode_response};
use sttp_proto::session::{PublisherOutput, PublisherSession, PublisherSessionConfig};
use sttp_wire::ticks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Keep-alive period (wire.md §1.2: NoOP every 5 s).
pub const KEEPALIVE: Duration = Duration::from_secs(5);
/// Largest command frame accepted (a subscribe string listing thousands of GUIDs fits).
pub const MAX_COMMAND_FRAME: usize = 1024 * 1024;
/// cppapi's sanity limit on a client's first frame (wire.md §1).
pub const FIRST_FRAME_LIMIT: usize = 1 + 8192;
/// Time a new connection has to define its operational modes.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a control response may wait for room in a subscriber's queue before the subscriber is
/// disconnected as a slow consumer.
pub const CONTROL_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Connections served at once.
    pub max_connections: usize,
    /// Data-plane sizing.
    pub engine: EngineConfig,
    /// Frames queued per subscriber.
    pub subscriber_queue_frames: usize,
    /// Name used in messages.
    pub name: String,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7165)),
            max_connections: 1000,
            engine: EngineConfig::default(),
            subscriber_queue_frames: 4096,
            name: "sttp".into(),
        }
    }
}

/// Handles user commands (0xD0–0xDF): gets the connection's peer address, the command code and
/// data, and may answer with `(response code 0xE0–0xEF, data)`.
pub type UserCommandHandler =
    Arc<dyn Fn(SocketAddr, u8, &[u8]) -> Option<(u8, Vec<u8>)> + Send + Sync>;

/// Publisher-wide counters.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections refused (limit).
    pub connections_refused: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicUsize,
    /// Sessions closed for protocol errors.
    pub protocol_closes: AtomicU64,
}

struct Shared {
    config: PublisherConfig,
    catalog: RwLock<Arc<Catalog>>,
    engine: Engine,
    stats: PublisherStats,
    user_commands: RwLock<Option<UserCommandHandler>>,
    config_changed: watch::Sender<u64>,
    subscriptions: RwLock<
        Vec<(
            SocketAddr,
            std::sync::Weak<sttp_dataplane::SubscriptionStats>,
        )>,
    >,
}

/// A running publisher.
pub struct Publisher {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Binds the listener, starts the data plane and starts accepting.
    pub async fn start(config: PublisherConfig, catalog: Catalog) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let engine = Engine::start(config.engine.clone())?;
        let (config_changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            config,
            catalog: RwLock::new(Arc::new(catalog)),
            engine,
            stats: PublisherStats::default(),
            user_commands: RwLock::new(None),
            config_changed,
            subscriptions: RwLock::new(Vec::new()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        tracing::info!(%local_addr, "STTP publisher listening");
        Ok(Self {
            shared,
            local_addr,
            shutdown,
            accept: Some(accept),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where sources publish points.
    pub fn source(&self) -> SourceHandle {
        self.shared.engine.source()
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        read(&self.shared.catalog)
    }

    /// Publisher counters.
    pub fn stats(&self) -> &PublisherStats {
        &self.shared.stats
    }

    /// Per-subscription counters of the live subscriptions.
    pub fn subscription_stats(&self) -> Vec<(SocketAddr, sttp_dataplane::stats::StatsSnapshot)> {
        let mut subs = self
            .shared
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        subs.retain(|(_, w)| w.strong_count() > 0);
        subs.iter()
            .filter_map(|(a, w)| w.upgrade().map(|s| (*a, s.snapshot())))
            .collect()
    }

    /// Replaces the metadata; every session is told with ConfigurationChanged (wire.md §9).
    ///
    /// Global signal indices come from the new catalog: sources must publish with the new
    /// indices from now on, and existing subscriptions keep the routes they were given until
    /// their subscribers resubscribe (which stock subscribers do on ConfigurationChanged only
    /// if their application asks for it).
    pub fn set_catalog(&self, catalog: Catalog) {
        *self
            .shared
            .catalog
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
        self.shared.config_changed.send_modify(|n| *n += 1);
    }

    /// Installs the user-command handler.
    pub fn on_user_command(&self, handler: UserCommandHandler) {
        *self
            .shared
            .user_commands
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(a) = self.accept.take() {
            let _ = a.await;
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn accept_loop(
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
                        let reason = serve_connection(stream, peer, &shared, shutdown).await;
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

/// Translates negotiated subscription settings into the data plane's plain values.
pub fn encoder_settings(
    s: &SubscriptionSettings,
    modes: OperationalModes,
    processing_interval: i32,
) -> EncoderSettings {
    let throttle = s.throttled.then(|| {
        let interval = if s.publish_interval > 0.0 {
            s.publish_interval
        } else if s.lag_time > 0.0 {
            s.lag_time
        } else {
            1.0
        };
        Throttle {
            interval: Duration::from_secs_f64(interval.clamp(0.001, 86_400.0)),
            reasonability: s.enable_time_reasonability_check.then(|| {
                let t = |secs: f64| (secs.clamp(0.0, 86_400.0) * ticks::PER_SECOND as f64) as i64;
                (t(s.lag_time), t(s.lead_time))
            }),
        }
    });
    EncoderSettings {
        format: if modes.use_tssc() {
            Format::Tssc
        } else {
            Format::Compact
        },
        include_time: s.include_time,
        millisecond_resolution: s.use_millisecond_resolution,
        nan_filter: s.request_nan_value_filter,
        min_flush_interval: Duration::from_millis(processing_interval.max(0) as u64),
        throttle,
        ..EncoderSettings::default()
    }
}

/// The last activation, kept to re-apply a new processing interval.
struct Active {
    routes: Vec<(u32, i32)>,
    cache_index: u8,
    settings: Box<SubscriptionSettings>,
    modes: OperationalModes,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
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

fn read_catalog(shared: &Shared) -> Arc<Catalog> {
    read(&shared.catalog)
}
