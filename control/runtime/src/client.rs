//! The subscriber client: connects, negotiates, subscribes, decodes, and keeps doing so —
//! automatic reconnect (1 s doubling to 30 s, forever by default), resubscribe after reconnect,
//! data-loss detection (no data for N s restarts the connect cycle), and a metadata cache.
//! Measurements arrive in batches (one per data packet) through an async `Stream` of
//! [`ClientEvent`]s or through a callback ([`Subscriber::run`]).

use crate::client_udp::{ClientCounters, UdpReceiver};
use crate::metadata_cache::MetadataCache;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::framing::FrameDecoder;
use sttp_proto::session::subscriber::{SubscriberOutput, SubscriberStats};
use sttp_proto::session::{
    ReceivedMeasurement, SubscriberEvent, SubscriberSession, SubscriberSessionConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::client_udp::{ClientStats, UdpChannel, UdpCipherChoice};

/// Largest response frame accepted (metadata of a large system is megabytes).
pub const MAX_RESPONSE_FRAME: usize = 256 * 1024 * 1024;

/// When and how often to reconnect.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Reconnect at all.
    pub enabled: bool,
    /// First delay.
    pub initial: Duration,
    /// Delay cap; the delay doubles up to it.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (None = never).
    pub max_retries: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            max_retries: None,
        }
    }
}

/// Subscriber client settings.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// `host:port` of the publisher.
    pub address: String,
    /// Protocol-level settings and the subscription.
    pub session: SubscriberSessionConfig,
    /// Reconnect policy.
    pub reconnect: ReconnectPolicy,
    /// Restart the connect cycle when subscribed and no data arrived for this long.
    pub data_loss_timeout: Option<Duration>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Events buffered before the client stops reading (TCP then pushes back on the publisher).
    pub event_queue: usize,
    /// Receive data over UDP (`dataChannel`), compact format, authenticated by default.
    pub udp: Option<UdpChannel>,
    /// Mutual TLS on the command channel ([`crate::tls`]); None = plain TCP.
    pub tls: Option<crate::tls::TlsClientSettings>,
}

impl SubscriberConfig {
    /// Defaults for `address`.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            session: SubscriberSessionConfig::default(),
            reconnect: ReconnectPolicy::default(),
            data_loss_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(5),
            event_queue: 1024,
            udp: None,
            tls: None,
        }
    }
}

/// What the client reports.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// A connection attempt starts.
    Connecting { address: String, attempt: u32 },
    /// Connected; negotiation starts.
    Connected { address: String },
    /// The connection ended.
    Disconnected { reason: String },
    /// The next attempt comes after `delay`.
    ReconnectScheduled { delay: Duration, attempt: u32 },
    /// Subscribed but silent for too long; the connection is restarted.
    DataLoss { silent_for: Duration },
    /// Metadata received.
    Metadata(Arc<MetadataCache>),
    /// A new signal index cache is in force.
    SubscriptionUpdated { signals: usize, cache_index: u8 },
    /// One data packet's measurements.
    Measurements(Vec<ReceivedMeasurement>),
    /// Any other session event.
    Session(SubscriberEvent),
    /// The client stopped for good.
    Stopped { reason: String },
}

#[derive(Debug)]
enum ClientCommand {
    Resubscribe(Box<SubscriptionSettings>),
    Unsubscribe,
    RequestMetadata(String),
    UserCommand(u8, Vec<u8>),
    RotateCipherKeys,
    Stop,
}

/// A running subscriber client.
#[derive(Debug)]
pub struct Subscriber {
    commands: mpsc::UnboundedSender<ClientCommand>,
    events: mpsc::Receiver<ClientEvent>,
    metadata: Arc<RwLock<Option<Arc<MetadataCache>>>>,
    counters: Arc<ClientCounters>,
    task: Option<JoinHandle<()>>,
}

impl Subscriber {
    /// Starts the client on the current tokio runtime.
    pub fn start(config: SubscriberConfig) -> Self {
        let (commands, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::channel(config.event_queue.max(1));
        let metadata = Arc::new(RwLock::new(None));
        let counters = Arc::new(ClientCounters::default());
        let task = tokio::spawn(client_task(
            config,
            cmd_rx,
            ev_tx,
            metadata.clone(),
            counters.clone(),
        ));
        Self {
            commands,
            events,
            metadata,
            counters,
            task: Some(task),
        }
    }

    /// Runs a client to completion, handing every event to `callback`; stops when the callback
    /// returns false or the client stops.
    pub async fn run(config: SubscriberConfig, mut callback: impl FnMut(&ClientEvent) -> bool) {
        let mut sub = Self::start(config);
        while let Some(ev) = sub.next_event().await {
            let stopped = matches!(ev, ClientEvent::Stopped { .. });
            if !callback(&ev) || stopped {
                break;
            }
        }
        sub.stop().await;
    }

    /// The next event; None once the client has stopped.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// The client's counters (points, datagrams, refused datagrams, keys).
    pub fn stats(&self) -> ClientStats {
        self.counters.snapshot()
    }

    /// The latest metadata.
    pub fn metadata(&self) -> Option<Arc<MetadataCache>> {
        self.metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Subscribes again with new settings (kept for later reconnects too).
    pub fn resubscribe(&self, settings: SubscriptionSettings) {
        let _ = self
            .commands
            .send(ClientCommand::Resubscribe(Box::new(settings)));
    }

    /// Unsubscribes (and stays unsubscribed across reconnects).
    pub fn unsubscribe(&self) {
        let _ = self.commands.send(ClientCommand::Unsubscribe);
    }

    /// Requests metadata again.
    pub fn request_metadata(&self, filters: &str) {
        let _ = self
            .commands
            .send(ClientCommand::RequestMetadata(filters.to_owned()));
    }

    /// Sends a user command (0xD0–0xDF).
    pub fn send_user_command(&self, code: u8, data: Vec<u8>) {
        let _ = self.commands.send(ClientCommand::UserCommand(code, data));
    }

    /// Asks the publisher for new data-channel keys (RotateCipherKeys).
    pub fn rotate_cipher_keys(&self) {
        let _ = self.commands.send(ClientCommand::RotateCipherKeys);
    }

    /// Stops the client and waits for it.
    pub async fn stop(&mut self) {
        let _ = self.commands.send(ClientCommand::Stop);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl futures_core::Stream for Subscriber {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.commands.send(ClientCommand::Stop);
    }
}

/// Why a connection ended.
enum End {
    /// Reconnect per policy.
    Lost(String),
    /// The application asked to stop, or dropped the client.
    Stop(String),
}

struct ClientState {
    config: SubscriberConfig,
    commands: mpsc::UnboundedReceiver<ClientCommand>,
    events: mpsc::Sender<ClientEvent>,
    metadata: Arc<RwLock<Option<Arc<MetadataCache>>>>,
    counters: Arc<ClientCounters>,
    want_subscribed: bool,
}

impl ClientState {
    async fn emit(&self, e: ClientEvent) -> bool {
        self.events.send(e).await.is_ok()
    }
}

async fn client_task(
    config: SubscriberConfig,
    commands: mpsc::UnboundedReceiver<ClientCommand>,
    events: mpsc::Sender<ClientEvent>,
    metadata: Arc<RwLock<Option<Arc<MetadataCache>>>>,
    counters: Arc<ClientCounters>,
) {
    let mut st = ClientState {
        want_subscribed: config.session.auto_subscribe,
        config,
        commands,
        events,
        metadata,
        counters,
    };
    let mut failures: u32 = 0;
    let mut delay = st.config.reconnect.initial;
    let address = st.config.address.clone();
    loop {
        if !st
            .emit(ClientEvent::Connecting {
                address: address.clone(),
                attempt: failures + 1,
            })
            .await
        {
            return;
        }
        let connected =
            crate::tls::client::open(&address, st.config.connect_timeout, st.config.tls.as_ref())
                .await;
        let end = match connected {
            Ok(stream) => {
                failures = 0;
                delay = st.config.reconnect.initial;
                if !st
                    .emit(ClientEvent::Connected {
                        address: address.clone(),
                    })
                    .await
                {
                    return;
                }
                run_connection(stream, &mut st).await
            }
            Err(why) => End::Lost(why),
        };
        let reason = match end {
            End::Stop(reason) => {
                let _ = st.emit(ClientEvent::Stopped { reason }).await;
                return;
            }
            End::Lost(reason) => reason,
        };
        tracing::warn!(%reason, "disconnected");
        if !st
            .emit(ClientEvent::Disconnected {
                reason: reason.clone(),
            })
            .await
        {
            return;
        }
        failures += 1;
        let policy = &st.config.reconnect;
        if !policy.enabled || policy.max_retries.is_some_and(|m| failures > m) {
            let _ = st
                .emit(ClientEvent::Stopped {
                    reason: format!("not reconnecting: {reason}"),
                })
                .await;
            return;
        }
        if !st
            .emit(ClientEvent::ReconnectScheduled {
                delay,
                attempt: failures,
            })
            .await
        {
            return;
        }
        // Wait, but still obey Stop.
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                cmd = st.commands.recv() => match cmd {
                    None | Some(ClientCommand::Stop) => {
                        let _ = st.emit(ClientEvent::Stopped { reason: "stopped by the application".into() }).await;
                        return;
                    }
                    Some(ClientCommand::Resubscribe(s)) => {
                        st.config.session.settings = *s;
                        st.want_subscribed = true;
                    }
                    Some(ClientCommand::Unsubscribe) => st.want_subscribed = false,
                    Some(_) => {}
                }
            }
        }
        delay = (delay * 2).min(st.config.reconnect.max);
    }
}

async fn run_connection<S>(stream: S, st: &mut ClientState) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut session_config = st.config.session.clone();
    session_config.auto_subscribe = st.want_subscribed;
    let mut udp = match &st.config.udp {
        Some(channel) => {
            // The data channel is set up before the session starts: the subscribe request
            // names the port actually bound (port 0 = ephemeral) and turns TSSC off (wire.md §8).
            let receiver = match UdpReceiver::bind(channel, st.counters.clone()).await {
                Ok(r) => r,
                Err(e) => return End::Stop(e.to_string()),
            };
            session_config.tssc = false;
            session_config.settings.data_channel = Some(sttp_proto::connstr::DataChannel {
                local_port: receiver.local_port(),
            });
            if channel.cipher == UdpCipherChoice::AesGcm {
                sttp_proto::ext::request_udp_cipher(
                    &mut session_config.settings.extra,
                    sttp_proto::ext::UdpCipher::Aes256Gcm,
                );
            }
            Some(receiver)
        }
        None => None,
    };
    let mut session = SubscriberSession::new(session_config);
    session.start();
    let mut framer = FrameDecoder::new(MAX_RESPONSE_FRAME);
    let mut buf = vec![0u8; 256 * 1024];
    let mut last_data = Instant::now();
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    let mut subscribed = false;
    let (mut seen_dropped, mut seen_key_updates) = (0, 0);
    loop {
        let stats = session.stats();
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        st.counters
            .decode_errors
            .fetch_add(stats.dropped_packets.saturating_sub(seen_dropped), relaxed);
        // GSF-compatible keys (UpdateCipherKeys) count as installed keys too.
        st.counters.key_epochs_installed.fetch_add(
            stats.cipher_key_updates.saturating_sub(seen_key_updates),
            relaxed,
        );
        (seen_dropped, seen_key_updates) = (stats.dropped_packets, stats.cipher_key_updates);
        if let Some(end) = drain(
            &mut session,
            &mut wr,
            st,
            udp.as_mut(),
            &mut last_data,
            &mut subscribed,
        )
        .await
        {
            return end;
        }
        tokio::select! {
            datagram = recv_datagram(udp.as_mut()) => match (datagram, udp.as_mut()) {
                (Ok(n), Some(receiver)) => receiver.deliver(n, &mut session),
                (Err(e), _) => return End::Lost(format!("UDP data channel receive failed: {e}")),
                (Ok(_), None) => {}
            },
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return End::Lost("publisher closed the connection".into()),
                    Ok(n) => n,
                    Err(e) => return End::Lost(format!("read failed: {e}")),
                };
                framer.push(buf.get(..n).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => session.handle_frame(&frame),
                        Ok(None) => break,
                        Err(e) => return End::Lost(format!("protocol error: {}", e.failed_message())),
                    }
                }
            }
            cmd = st.commands.recv() => match cmd {
                None | Some(ClientCommand::Stop) => {
                    let _ = wr.shutdown().await;
                    return End::Stop("stopped by the application".into());
                }
                Some(ClientCommand::Resubscribe(s)) => {
                    st.config.session.settings = (*s).clone();
                    st.want_subscribed = true;
                    last_data = Instant::now();
                    session.resubscribe(*s);
                }
                Some(ClientCommand::Unsubscribe) => {
                    st.want_subscribed = false;
                    subscribed = false;
                    session.unsubscribe();
                }
                Some(ClientCommand::RequestMetadata(f)) => session.request_metadata(&f),
                Some(ClientCommand::UserCommand(code, data)) => session.send_user_command(code, data),
                Some(ClientCommand::RotateCipherKeys) => session.rotate_cipher_keys(),
            },
            _ = watchdog.tick() => {
                if let Some(limit) = st.config.data_loss_timeout {
                    let silent = last_data.elapsed();
                    if subscribed && st.want_subscribed && silent >= limit {
                        tracing::warn!(silent_s = silent.as_secs_f64(), "no data received: restarting the connection");
                        let _ = st.emit(ClientEvent::DataLoss { silent_for: silent }).await;
                        return End::Lost(format!("data loss: no data for {:.1} s", silent.as_secs_f64()));
                    }
                }
            }
        }
    }
}

/// The next datagram's length, or never when there is no UDP data channel.
async fn recv_datagram(udp: Option<&mut UdpReceiver>) -> std::io::Result<usize> {
    match udp {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes queued commands and forwards events; Some(end) when the connection must end.
async fn drain<W: AsyncWrite + Unpin>(
    session: &mut SubscriberSession,
    wr: &mut W,
    st: &ClientState,
    mut udp: Option<&mut UdpReceiver>,
    last_data: &mut Instant,
    subscribed: &mut bool,
) -> Option<End> {
    while let Some(out) = session.poll_output() {
        let event = match out {
            SubscriberOutput::Send(bytes) => {
                if let Err(e) = wr.write_all(&bytes).await {
                    return Some(End::Lost(format!("write failed: {e}")));
                }
                continue;
            }
            SubscriberOutput::Event(SubscriberEvent::Measurements(batch)) => {
                *last_data = Instant::now();
                st.counters
                    .points_received
                    .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                ClientEvent::Measurements(batch)
            }
            SubscriberOutput::Event(SubscriberEvent::UserResponse {
                code,
                command,
                data,
            }) => {
                if let Some((confirm_code, confirm)) = udp
                    .as_deref_mut()
                    .and_then(|r| r.on_user_response(code, &data))
                {
                    session.send_user_command(confirm_code, confirm);
                    continue;
                }
                ClientEvent::Session(SubscriberEvent::UserResponse {
                    code,
                    command,
                    data,
                })
            }
            SubscriberOutput::Event(SubscriberEvent::Metadata(set)) => {
                let cache = Arc::new(MetadataCache::new(*set));
                *st.metadata.write().unwrap_or_else(|e| e.into_inner()) = Some(cache.clone());
                ClientEvent::Metadata(cache)
            }
            SubscriberOutput::Event(SubscriberEvent::SubscriptionUpdated {
                cache_index,
                signals,
            }) => {
                if !*subscribed {
                    *last_data = Instant::now();
                }
                *subscribed = true;
                ClientEvent::SubscriptionUpdated {
                    signals,
                    cache_index,
                }
            }
            SubscriberOutput::Event(SubscriberEvent::ProtocolWarning(w)) => {
                tracing::warn!("{w}");
                ClientEvent::Session(SubscriberEvent::ProtocolWarning(w))
            }
            SubscriberOutput::Event(e) => ClientEvent::Session(e),
        };
        if !st.emit(event).await {
            return Some(End::Stop("event receiver dropped".into()));
        }
    }
    None
}

/// Session counters, for status displays.
pub type Stats = SubscriberStats;
