//! The publisher: a TCP listener ([`listener`]), a transport handshake ([`transport`]), one task
//! pair (reader + writer) per connection around a sans-IO `PublisherSession` ([`connection`]),
//! and the data-plane engine that encodes and fans out.

mod budget;
pub mod close;
pub mod command_pool;
mod connection;
mod data_channel;
mod data_keys;
pub mod limits;
mod listener;
mod settings;
pub mod transport;
mod writer;

pub use close::{CloseCounters, CloseReason, RefusalKind};
pub use limits::Limits;
pub use settings::encoder_settings;
pub use transport::Transport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use sttp_dataplane::{Engine, EngineConfig, SourceHandle};
use sttp_proto::catalog::Catalog;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    /// Plain TCP or TLS.
    pub transport: Transport,
    /// Hostile-input limits: per-source connections, timeouts, memory budget ([`limits`]).
    pub limits: Limits,
    /// Period of automatic data-channel key rotation (authenticated UDP); None = only when
    /// the subscriber asks (RotateCipherKeys).
    pub key_rotation: Option<Duration>,
    /// Subscriber access control; None serves every point to everyone ([`crate::access`]).
    pub access: Option<crate::access::AccessControl>,
    /// When stock subscribers' UDP data channels get GSF-compatible AES-256-CBC keys.
    pub legacy_cipher_keys: LegacyCipherKeys,
    /// Where expensive commands run and how much CPU a connection's commands may use.
    pub commands: CommandSettings,
}

/// Where expensive commands (Subscribe, MetadataRefresh, access re-evaluation) run, and the
/// CPU each connection may spend on them ([`command_pool`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSettings {
    /// Threads of the command pool; 0 runs commands on the connection's own task (no isolation).
    pub threads: usize,
    /// CPU time a connection's commands may use at once (the bucket); zero = no budget.
    pub cpu_burst: Duration,
    /// CPU seconds per second the bucket refills at.
    pub cpu_rate: f64,
}

/// Default CPU time one connection's commands may use in a burst.
pub const DEFAULT_COMMAND_CPU_BURST: Duration = Duration::from_secs(2);
/// Default refill of the per-connection CPU bucket: 10 % of one core.
pub const DEFAULT_COMMAND_CPU_RATE: f64 = 0.1;

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_burst: DEFAULT_COMMAND_CPU_BURST,
            cpu_rate: DEFAULT_COMMAND_CPU_RATE,
        }
    }
}

/// When a UDP subscription that did not ask for our authenticated extension gets
/// GSF-compatible AES-256-CBC keys (UpdateCipherKeys, wire.md §8). That cipher gives
/// confidentiality only — no integrity, no replay protection — and its keys travel on the
/// command channel, so it is only worth anything when that channel is TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegacyCipherKeys {
    /// Never: stock subscribers get plaintext datagrams.
    Off,
    /// On TLS-authenticated connections (as gsfapi does).
    #[default]
    WhenTls,
    /// Always, even on plain TCP where the keys travel in the clear (testing only).
    Always,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7165)),
            max_connections: 1000,
            engine: EngineConfig::default(),
            subscriber_queue_frames: 4096,
            name: "sttp".into(),
            transport: Transport::Plain,
            limits: Limits::default(),
            key_rotation: Some(Duration::from_secs(600)),
            access: None,
            legacy_cipher_keys: LegacyCipherKeys::default(),
            commands: CommandSettings::default(),
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
    /// Connections refused: the source IP had `limits.max_per_source` open.
    pub refused_per_source: AtomicU64,
    /// Connections refused: the source IP is throttled after repeated failures.
    pub refused_throttled: AtomicU64,
    /// Throttle incidents started (one alert each).
    pub throttle_incidents: AtomicU64,
    /// Connections closed: transport handshake not finished within `limits.handshake_timeout`.
    pub handshake_timeouts: AtomicU64,
    /// Connections refused by the transport (e.g. failed TLS handshake).
    pub transport_refusals: AtomicU64,
    /// Connections closed: no complete first command within `limits.first_command_timeout`.
    pub first_command_timeouts: AtomicU64,
    /// Connections closed for a frame above the limit (also counted in `protocol_closes`).
    pub oversized_frames: AtomicU64,
    /// Sessions closed for exceeding `limits.session_memory_budget`.
    pub memory_budget_closes: AtomicU64,
    /// Sessions closed because their commands used more CPU than `commands.cpu_burst` allows.
    pub cpu_budget_closes: AtomicU64,
    /// CPU time spent on commands on the command pool, µs.
    pub command_cpu_us: AtomicU64,
    /// Every close, by reason, and every refusal, by kind.
    pub closes: CloseCounters,
    /// Sessions closed because the peer stopped taking bytes: no progress on the send queue
    /// for `limits.send_stall_timeout`, or the kernel's TCP user timeout / keep-alive gave up
    /// (docs/liveness.md).
    pub dead_peer_closes: AtomicU64,
}

struct Shared {
    config: PublisherConfig,
    transport: Transport,
    catalog: RwLock<Arc<Catalog>>,
    engine: Engine,
    stats: PublisherStats,
    commands: Option<command_pool::CommandPool>,
    sources: Arc<limits::SourceTracker>,
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
        let listener = listen(config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let engine = Engine::start(config.engine.clone())?;
        let (config_changed, _) = watch::channel(0);
        let sources = limits::SourceTracker::new(config.limits.clone());
        match &config.access {
            Some(access) => drop(access.spawn_watcher()),
            None => tracing::info!("access control is off: every subscriber may see every point"),
        }
        let commands = match config.commands.threads {
            0 => None,
            n => Some(command_pool::CommandPool::start(n)?),
        };
        let shared = Arc::new(Shared {
            commands,
            transport: config.transport.clone(),
            config,
            catalog: RwLock::new(Arc::new(catalog)),
            engine,
            stats: PublisherStats::default(),
            sources,
            user_commands: RwLock::new(None),
            config_changed,
            subscriptions: RwLock::new(Vec::new()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept = tokio::spawn(listener::accept_loop(listener, shared.clone(), shutdown_rx));
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

    /// Counters of the command pool (None when commands run on the connections' tasks).
    pub fn command_pool_stats(&self) -> Option<&command_pool::PoolStats> {
        self.shared.commands.as_ref().map(|p| p.stats())
    }

    /// Counters of every data-plane worker.
    pub fn worker_stats(&self) -> Vec<sttp_dataplane::stats::WorkerStatsSnapshot> {
        self.shared.engine.worker_stats()
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

/// Pending connections the kernel may queue before the accept loop takes them. Larger than
/// tokio's default (1024) so that a connection flood overflows the queue less often; the
/// kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}
