//! The subscriber client: connects, negotiates, subscribes, decodes, and keeps doing so —
//! automatic reconnect with a jittered exponential backoff (100 ms doubling to 30 s, forever by
//! default) that grows on every failed session and resets only after a session that delivered
//! data, resubscribe after reconnect, a connect-to-subscribed timeout and a data-loss timer
//! (running from the subscription's acknowledgement), bounded metadata, and a metadata cache.
//! docs/subscriber.md describes the timers, the backoff and the limits.
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
use sttp_proto::peer_text::PeerText;
use sttp_proto::session::subscriber::{
    SessionFailure, SubscriberLimits, SubscriberOutput, SubscriberStats, MAX_CACHE_BYTES,
    MAX_METADATA_BYTES,
};
use sttp_proto::session::{
    ReceivedMeasurement, SubscriberEvent, SubscriberSession, SubscriberSessionConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::client_udp::{ClientStats, UdpChannel, UdpCipherChoice};

/// Bytes a response frame may carry beyond the metadata limit (the response header and slack).
const FRAME_SLACK: usize = 64 * 1024;

/// When and how often to reconnect.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Reconnect at all.
    pub enabled: bool,
    /// Delay before the first retry after a failure.
    pub initial: Duration,
    /// Delay cap; the delay doubles up to it.
    pub max: Duration,
    /// Each delay is scaled by a random factor in [1 − jitter, 1 + jitter] (then capped at
    /// `max`), so many subscribers that lost the same publisher do not retry in lock-step.
    pub jitter: f64,
    /// Give up after this many failed sessions in a row (None = never).
    pub max_retries: Option<u32>,
}

impl Default for ReconnectPolicy {
    /// 100 ms doubling to 30 s, ±20 % jitter, forever: after a publisher restart the first
    /// retries come within 0.1, 0.3, 0.7, 1.5 s of the loss (docs/subscriber.md).
    fn default() -> Self {
        Self {
            enabled: true,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: 0.2,
            max_retries: None,
        }
    }
}

/// The reconnect schedule: how long to wait after the n-th failed session in a row.
///
/// A session *fails* when the connect fails, or when it ends without having delivered any data
/// (refused, oversized frame, undecodable metadata, a timer, a closed socket). Only a session
/// that delivered data resets the count, so a publisher that accepts and then always fails
/// cannot hold a subscriber in a fast retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// A schedule with a jitter source seeded by `seed` (deterministic for tests).
    pub fn new(policy: ReconnectPolicy, seed: u64) -> Self {
        Self {
            policy,
            failures: 0,
            rng: seed,
        }
    }

    /// Failed sessions in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The session delivered data: the next failure starts the schedule again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records a failed session and returns the delay before the next attempt, or None when
    /// the policy says to stop (reconnect off, or `max_retries` failures in a row exceeded).
    pub fn fail(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if !self.policy.enabled || self.policy.max_retries.is_some_and(|m| self.failures > m) {
            return None;
        }
        Some(self.delay_for(self.failures))
    }

    /// The jittered delay after the `n`-th failure in a row (n ≥ 1).
    fn delay_for(&mut self, n: u32) -> Duration {
        let shift = n.saturating_sub(1).min(30);
        let base = self
            .policy
            .initial
            .saturating_mul(1u32 << shift)
            .min(self.policy.max);
        let jitter = self.policy.jitter.clamp(0.0, 1.0);
        // Uniform in [0, 1) from the top 53 bits.
        let u = (self.next_random() >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 - jitter + 2.0 * jitter * u;
        base.mul_f64(factor).min(self.policy.max)
    }

    /// splitmix64: small, fast, and good enough to spread retries.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
    /// Restart the connect cycle when subscribed and no data arrived for this long, counted
    /// from the publisher's acknowledgement of the subscription (default 30 s).
    pub data_loss_timeout: Option<Duration>,
    /// Restart the connect cycle when connected but not subscribed (acknowledged) this long
    /// after connecting: metadata and the subscription must arrive within it (default 30 s).
    pub subscribe_timeout: Option<Duration>,
    /// Largest metadata document (after inflation) and, plus a little, largest response
    /// frame; more fails the session (default 64 MiB, [`MAX_METADATA_BYTES`]).
    pub max_metadata_bytes: usize,
    /// Largest signal index cache after inflation (default 64 MiB, [`MAX_CACHE_BYTES`]).
    pub max_cache_bytes: usize,
    /// With a UDP channel that asks for our authenticated cipher: how long after the
    /// subscription's acknowledgement the publisher has to announce a key before it is taken
    /// to be a stock publisher (see [`UdpCipherChoice`]; default 2 s).
    pub udp_key_wait: Duration,
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
            subscribe_timeout: Some(Duration::from_secs(30)),
            max_metadata_bytes: MAX_METADATA_BYTES,
            max_cache_bytes: MAX_CACHE_BYTES,
            udp_key_wait: Duration::from_secs(2),
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
    /// The session failed (refused, undecodable metadata or cache, a timer): the connection is
    /// closed and retried per the reconnect policy. Followed by `Disconnected`.
    SessionFailed(SessionFailure),
    /// The publisher did not take up our UDP cipher extension: the data channel now accepts
    /// plain datagrams (only with [`UdpCipherChoice::Prefer`]).
    UdpCipherFallback,
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
    /// Reconnect per policy. `kind` is a stable name (no peer text), `detail` the full reason
    /// (peer text already escaped).
    Lost { kind: &'static str, detail: String },
    /// The application asked to stop, dropped the client, or a setting cannot be met.
    Stop(String),
}

impl End {
    fn lost(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::Lost {
            kind,
            detail: detail.into(),
        }
    }
}

struct ClientState {
    config: SubscriberConfig,
    commands: mpsc::UnboundedReceiver<ClientCommand>,
    events: mpsc::Sender<ClientEvent>,
    metadata: Arc<RwLock<Option<Arc<MetadataCache>>>>,
    counters: Arc<ClientCounters>,
    want_subscribed: bool,
    /// The current session delivered at least one measurement.
    delivered: bool,
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
    let mut backoff = Backoff::new(config.reconnect.clone(), rand::random());
    let mut st = ClientState {
        want_subscribed: config.session.auto_subscribe,
        config,
        commands,
        events,
        metadata,
        counters,
        delivered: false,
    };
    let address = st.config.address.clone();
    loop {
        let attempt = backoff.failures() + 1;
        if !st
            .emit(ClientEvent::Connecting {
                address: address.clone(),
                attempt,
            })
            .await
        {
            return;
        }
        st.delivered = false;
        let connected =
            crate::tls::client::open(&address, st.config.connect_timeout, st.config.tls.as_ref())
                .await;
        let end = match connected {
            Ok(stream) => {
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
            Err(why) => End::lost("connect failed", why),
        };
        let (kind, detail) = match end {
            End::Stop(reason) => {
                let _ = st.emit(ClientEvent::Stopped { reason }).await;
                return;
            }
            End::Lost { kind, detail } => (kind, detail),
        };
        if st.delivered {
            backoff.reset();
        }
        let next = backoff.fail();
        match next {
            Some(delay) => tracing::warn!(
                "{detail}; reconnecting in {:.2} s (attempt {})",
                delay.as_secs_f64(),
                backoff.failures()
            ),
            None => tracing::warn!("{detail}; not reconnecting"),
        }
        if !st
            .emit(ClientEvent::Disconnected {
                reason: detail.clone(),
            })
            .await
        {
            return;
        }
        let Some(delay) = next else {
            let _ = st
                .emit(ClientEvent::Stopped {
                    reason: format!("not reconnecting after: {kind}"),
                })
                .await;
            return;
        };
        if !st
            .emit(ClientEvent::ReconnectScheduled {
                delay,
                attempt: backoff.failures(),
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
    }
}

/// What the UDP data channel waits for from the publisher's key announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyWait {
    /// No UDP, plain datagrams, or the key arrived.
    Settled,
    /// Subscribed; the key must arrive by then.
    Until(Instant),
    /// Not yet subscribed.
    NotStarted,
}

async fn run_connection<S>(stream: S, st: &mut ClientState) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut session_config = st.config.session.clone();
    session_config.auto_subscribe = st.want_subscribed;
    let mut key_wait = KeyWait::Settled;
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
            if channel.cipher != UdpCipherChoice::None {
                sttp_proto::ext::request_udp_cipher(
                    &mut session_config.settings.extra,
                    sttp_proto::ext::UdpCipher::Aes256Gcm,
                );
                key_wait = KeyWait::NotStarted;
            }
            Some(receiver)
        }
        None => None,
    };
    let limits = SubscriberLimits {
        max_metadata_bytes: st.config.max_metadata_bytes,
        max_cache_bytes: st.config.max_cache_bytes,
        subscribe_timeout: st.config.subscribe_timeout,
        data_loss_timeout: st.config.data_loss_timeout,
    };
    let mut session = SubscriberSession::with_limits(session_config, limits);
    session.advance(Instant::now().into_std());
    session.start();
    let mut framer = FrameDecoder::new(st.config.max_metadata_bytes.saturating_add(FRAME_SLACK));
    let mut buf = vec![0u8; 256 * 1024];
    let (mut seen_dropped, mut seen_key_updates) = (0, 0);
    loop {
        session.advance(Instant::now().into_std());
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
        if let Some(end) = drain(&mut session, &mut wr, st, udp.as_mut()).await {
            return end;
        }
        // The key announcement is awaited from the subscription's acknowledgement on.
        if key_wait == KeyWait::NotStarted && session.is_acknowledged() {
            key_wait = KeyWait::Until(Instant::now() + st.config.udp_key_wait);
        }
        if udp.as_ref().is_some_and(UdpReceiver::has_key) {
            key_wait = KeyWait::Settled;
        }
        let session_deadline = session.next_deadline().map(Instant::from_std);
        let key_deadline = match key_wait {
            KeyWait::Until(t) => Some(t),
            _ => None,
        };
        let deadline = match (session_deadline, key_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            datagram = recv_datagram(udp.as_mut()) => match (datagram, udp.as_mut()) {
                (Ok(n), Some(receiver)) => receiver.deliver(n, &mut session),
                (Err(e), _) => return End::lost("UDP receive failed", format!("UDP data channel receive failed: {e}")),
                (Ok(_), None) => {}
            },
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return End::lost("closed by the publisher", "publisher closed the connection"),
                    Ok(n) => n,
                    Err(e) => return End::lost("read failed", format!("read failed: {e}")),
                };
                session.advance(Instant::now().into_std());
                framer.push(buf.get(..n).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => session.handle_frame(&frame),
                        Ok(None) => break,
                        Err(e) => return End::lost("protocol error", format!("protocol error: {e}")),
                    }
                    if session.is_failed() {
                        break;
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
                    session.resubscribe(*s);
                }
                Some(ClientCommand::Unsubscribe) => {
                    st.want_subscribed = false;
                    session.unsubscribe();
                }
                Some(ClientCommand::RequestMetadata(f)) => session.request_metadata(&f),
                Some(ClientCommand::UserCommand(code, data)) => session.send_user_command(code, data),
                Some(ClientCommand::RotateCipherKeys) => session.rotate_cipher_keys(),
            },
            _ = sleep_until(deadline) => {
                if key_deadline.is_some_and(|k| Instant::now() >= k)
                    && !udp.as_ref().is_some_and(UdpReceiver::has_key)
                {
                    key_wait = KeyWait::Settled;
                    let Some(receiver) = udp.as_mut() else { continue };
                    let wait = st.config.udp_key_wait.as_secs_f64();
                    if receiver.cipher() == UdpCipherChoice::AesGcm {
                        let why = format!(
                            "the publisher did not take up the authenticated UDP cipher (no key announced within {wait:.1} s of the subscription): it is not an sttp publisher or has the extension off; use --udp-cipher none to accept plain datagrams"
                        );
                        // Said once, by whoever reads the Stopped event.
                        return End::Stop(why);
                    }
                    tracing::warn!(
                        refused = receiver.refused(),
                        "the publisher did not take up the authenticated UDP cipher (no key announced within {wait:.1} s of the subscription): accepting plain, unauthenticated datagrams as stock STTP publishers send them"
                    );
                    receiver.fall_back_to_plain();
                    if !st.emit(ClientEvent::UdpCipherFallback).await {
                        return End::Stop("event receiver dropped".into());
                    }
                }
                // Session timers fire on the next advance, at the top of the loop.
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
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
    st: &mut ClientState,
    mut udp: Option<&mut UdpReceiver>,
) -> Option<End> {
    while let Some(out) = session.poll_output() {
        let event = match out {
            SubscriberOutput::Send(bytes) => {
                if let Err(e) = wr.write_all(&bytes).await {
                    return Some(End::lost("write failed", format!("write failed: {e}")));
                }
                continue;
            }
            SubscriberOutput::Event(SubscriberEvent::Measurements(batch)) => {
                st.delivered = true;
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
            }) => ClientEvent::SubscriptionUpdated {
                signals,
                cache_index,
            },
            SubscriberOutput::Event(SubscriberEvent::ProtocolWarning(w)) => {
                // Our own text, but it may quote the peer's bytes.
                tracing::warn!("{}", PeerText::log(&w));
                ClientEvent::Session(SubscriberEvent::ProtocolWarning(w))
            }
            SubscriberOutput::Event(SubscriberEvent::Failed { command, message }) => {
                // Not fatal (metadata, unsubscribe, user commands): said once, here.
                tracing::warn!(
                    "publisher refused command 0x{command:02X}: {}",
                    PeerText::log(&message)
                );
                ClientEvent::Session(SubscriberEvent::Failed { command, message })
            }
            SubscriberOutput::Event(SubscriberEvent::SessionFailed(failure)) => {
                // The reason is logged once, with the retry, by the connect loop.
                let detail = failure.to_string();
                let kind = failure.kind();
                if let SessionFailure::DataLoss { silent_for } = failure {
                    let _ = st.emit(ClientEvent::DataLoss { silent_for }).await;
                }
                let _ = st.emit(ClientEvent::SessionFailed(failure)).await;
                return Some(End::lost(kind, detail));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy::default()
    }

    #[test]
    fn backoff_doubles_from_100_ms_to_the_cap_within_the_jitter() {
        let mut b = Backoff::new(policy(), 42);
        let mut base = 0.1f64;
        for n in 1..=20 {
            let d = b.fail().unwrap().as_secs_f64();
            let cap = 30.0f64;
            let lo = (base * 0.8).min(cap);
            let hi = (base * 1.2).min(cap);
            assert!(
                d >= lo - 1e-9 && d <= hi + 1e-9,
                "failure {n}: {d} s not in [{lo}, {hi}]"
            );
            assert_eq!(b.failures(), n);
            base = (base * 2.0).min(cap);
        }
    }

    #[test]
    fn backoff_is_deterministic_per_seed_and_differs_between_seeds() {
        let run = |seed| {
            let mut b = Backoff::new(policy(), seed);
            (0..8).map(|_| b.fail().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn jitter_spreads_a_thousand_subscribers() {
        // 1000 clients with different seeds, first retry: not in lock-step.
        let firsts: Vec<Duration> = (0..1000u64)
            .map(|seed| Backoff::new(policy(), seed).fail().unwrap())
            .collect();
        let min = firsts.iter().min().unwrap().as_secs_f64();
        let max = firsts.iter().max().unwrap().as_secs_f64();
        assert!(min >= 0.08 && max <= 0.12, "{min}..{max}");
        assert!(max - min > 0.03, "spread {min}..{max}");
        let distinct: std::collections::HashSet<_> = firsts.iter().collect();
        assert!(distinct.len() > 900);
    }

    #[test]
    fn reset_restarts_the_schedule_and_max_retries_stops_it() {
        let mut b = Backoff::new(
            ReconnectPolicy {
                jitter: 0.0,
                max_retries: Some(3),
                ..policy()
            },
            1,
        );
        assert_eq!(b.fail(), Some(Duration::from_millis(100)));
        assert_eq!(b.fail(), Some(Duration::from_millis(200)));
        b.reset();
        assert_eq!(b.fail(), Some(Duration::from_millis(100)));
        assert_eq!(b.fail(), Some(Duration::from_millis(200)));
        assert_eq!(b.fail(), Some(Duration::from_millis(400)));
        assert_eq!(
            b.fail(),
            None,
            "fourth failure in a row exceeds max_retries = 3"
        );
        let mut off = Backoff::new(
            ReconnectPolicy {
                enabled: false,
                ..policy()
            },
            1,
        );
        assert_eq!(off.fail(), None);
    }

    #[test]
    fn the_cap_holds_with_jitter_and_huge_failure_counts() {
        let mut b = Backoff::new(policy(), 3);
        for _ in 0..100 {
            assert!(b.fail().unwrap() <= Duration::from_secs(30));
        }
    }
}
