//! Subscriber side of one command-channel session (wire.md §1–§6).
//!
//! Call order: [`SubscriberSession::start`] right after the connection is up, then
//! [`SubscriberSession::handle_frame`] for every frame body from the publisher; drain
//! [`SubscriberSession::poll_output`] after each call. Commands are sent through
//! [`SubscriberOutput::Send`] in the order they must hit the wire.
//!
//! Time is an argument (the session never reads a clock): a driver that wants the
//! connect-to-subscribed and data-loss timers calls [`SubscriberSession::advance`] with the
//! current time before it feeds input and whenever [`SubscriberSession::next_deadline`] passes.
//! A session whose driver never calls it has no timers. When the session can no longer do its
//! job (undecodable metadata or cache, a refusal, a timer) it emits
//! [`SubscriberEvent::SessionFailed`] once and ignores every later input: the driver closes the
//! connection and reconnects per its policy (docs/subscriber.md).
//!
//! Data packets are decoded against the signal index cache slot their CacheIndex bit names
//! (wire.md §5); each slot owns its own TSSC decoder, so a packet can never be decoded against
//! the wrong cache, and a new cache means a fresh decoder expecting sequence 0.

use crate::command::Command;
use crate::connstr::SubscriptionSettings;
use crate::encoding::StringEncoding;
use crate::error::ProtoError;
use crate::metadata::ParseLimits;
use crate::metadata::{xml, DataSet, MetadataError};
use crate::opmodes::OperationalModes;
use crate::peer_text::PeerText;
use crate::response::{code as rsp, decode_message, decode_responses};
use crate::sic::SignalIndexCache;
use crate::{command::code as cmd, payloads};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use sttp_wire::compact::{self, BaseTimes, CompactOptions};
use sttp_wire::legacy_cbc::{self, LegacyKeys};
use sttp_wire::packet::DataPacketHeader;
use sttp_wire::tssc::{self, PacketOutcome};
use sttp_wire::Measurement;
use uuid::Uuid;

/// Default bound on a metadata document after inflation (and on its XML): 64 MiB, about
/// 150 000 measurements at ~400 bytes of XML each, several times the largest systems stock
/// publishers serve, and the bound the metadata parser applies anyway
/// ([`ParseLimits::default`]). See docs/subscriber.md.
pub const MAX_METADATA_BYTES: usize = 64 * 1024 * 1024;
/// Slack above twice a cache's size up to which runtime IDs get a TSSC point slot.
pub const MIN_TSSC_ID_BOUND: i32 = 1024;
/// Default bound on a signal index cache after inflation: 64 MiB is about 1.4 M entries of
/// 48 bytes, far more than any subscription.
pub const MAX_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Default connect-to-subscribed timeout.
pub const DEFAULT_SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default data-loss timeout.
pub const DEFAULT_DATA_LOSS_TIMEOUT: Duration = Duration::from_secs(30);

/// Bounds and timers of a subscriber session (docs/subscriber.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberLimits {
    /// Largest metadata document, after inflation; more fails the session.
    pub max_metadata_bytes: usize,
    /// Largest signal index cache, after inflation; more fails the session.
    pub max_cache_bytes: usize,
    /// From [`SubscriberSession::start`] until the publisher acknowledges Subscribe (Succeeded
    /// for 0x02, or the first data): longer fails the session. Only while a subscription is
    /// wanted (`auto_subscribe`, or after [`SubscriberSession::subscribe`]).
    pub subscribe_timeout: Option<Duration>,
    /// Once subscribed and acknowledged, no data for this long fails the session. Runs from the
    /// acknowledgement, not from the first data, so a publisher that never sends any is noticed.
    pub data_loss_timeout: Option<Duration>,
}

impl Default for SubscriberLimits {
    fn default() -> Self {
        Self {
            max_metadata_bytes: MAX_METADATA_BYTES,
            max_cache_bytes: MAX_CACHE_BYTES,
            subscribe_timeout: Some(DEFAULT_SUBSCRIBE_TIMEOUT),
            data_loss_timeout: Some(DEFAULT_DATA_LOSS_TIMEOUT),
        }
    }
}

/// Why a session can no longer do its job; the driver closes the connection and reconnects.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionFailure {
    /// The MetadataRefresh reply did not decode: a gzip bomb past the limit, truncated gzip,
    /// malformed XML.
    Metadata(MetadataError),
    /// An UpdateSignalIndexCache payload did not decode (bomb, truncation, malformed body).
    SignalIndexCache(ProtoError),
    /// The publisher answered Failed to the connection itself (0x00, e.g. "too many
    /// connections from this address"), to DefineOperationalModes (0x06) or to Subscribe (0x02).
    Refused {
        /// The command refused.
        command: u8,
        /// The publisher's message (peer text: print it through [`PeerText`]).
        message: String,
    },
    /// Connected but not subscribed within [`SubscriberLimits::subscribe_timeout`].
    SubscribeTimeout {
        /// Time since start.
        waited: Duration,
    },
    /// Subscribed but no data for [`SubscriberLimits::data_loss_timeout`].
    DataLoss {
        /// Time since the acknowledgement or the last data.
        silent_for: Duration,
    },
}

impl SessionFailure {
    /// A short stable name, for counters and exit messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Metadata(MetadataError::TooLarge { .. }) => "metadata too large",
            Self::Metadata(_) => "undecodable metadata",
            Self::SignalIndexCache(ProtoError::Gzip(crate::gzip::GunzipError::TooLarge(_))) => {
                "signal index cache too large"
            }
            Self::SignalIndexCache(_) => "undecodable signal index cache",
            Self::Refused { command: 0x00, .. } => "connection refused by the publisher",
            Self::Refused { .. } => "command refused by the publisher",
            Self::SubscribeTimeout { .. } => "not subscribed in time",
            Self::DataLoss { .. } => "data loss",
        }
    }
}

impl std::fmt::Display for SessionFailure {
    /// One line, with peer text escaped and capped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Metadata(e) => {
                write!(
                    f,
                    "metadata could not be used: {}",
                    PeerText::log(&e.to_string())
                )
            }
            Self::SignalIndexCache(e) => write!(
                f,
                "signal index cache could not be used: {}",
                PeerText::log(&e.to_string())
            ),
            Self::Refused { command, message } => write!(
                f,
                "publisher refused command 0x{command:02X}: {}",
                PeerText::log(message)
            ),
            Self::SubscribeTimeout { waited } => write!(
                f,
                "not subscribed {:.1} s after connecting",
                waited.as_secs_f64()
            ),
            Self::DataLoss { silent_for } => {
                write!(f, "no data for {:.1} s", silent_for.as_secs_f64())
            }
        }
    }
}

/// How the subscriber session behaves.
#[derive(Debug, Clone)]
pub struct SubscriberSessionConfig {
    /// Protocol version to announce (1–3; 2 is what every stock subscriber sends).
    pub version: u8,
    /// String encoding to announce.
    pub encoding: StringEncoding,
    /// Ask for TSSC (`false` = compact format).
    pub tssc: bool,
    /// Ask for gzip metadata.
    pub compress_metadata: bool,
    /// Ask for a gzip signal index cache.
    pub compress_signal_index_cache: bool,
    /// Request metadata on connect.
    pub auto_request_metadata: bool,
    /// Subscribe once metadata arrived (or at once without metadata).
    pub auto_subscribe: bool,
    /// MetadataRefresh filters (empty = everything).
    pub metadata_filters: String,
    /// The subscription to make.
    pub settings: SubscriptionSettings,
}

impl Default for SubscriberSessionConfig {
    fn default() -> Self {
        Self {
            version: 2,
            encoding: StringEncoding::Utf8,
            tssc: true,
            compress_metadata: true,
            compress_signal_index_cache: true,
            auto_request_metadata: true,
            auto_subscribe: true,
            metadata_filters: String::new(),
            settings: SubscriptionSettings::default(),
        }
    }
}

impl SubscriberSessionConfig {
    /// The operational modes word this configuration announces (wire.md §2).
    pub fn operational_modes(&self) -> OperationalModes {
        let mut m = OperationalModes::subscriber(self.version, self.tssc, self.encoding).0;
        if !self.compress_metadata {
            m &= !0x8000_0000;
        }
        if !self.compress_signal_index_cache {
            m &= !0x4000_0000;
        }
        OperationalModes(m)
    }
}

/// A measurement resolved to its signal ID.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceivedMeasurement {
    /// Signal GUID from the signal index cache.
    pub signal_id: Uuid,
    /// Raw ticks.
    pub timestamp: i64,
    /// Value.
    pub value: f32,
    /// Full state flags.
    pub flags: u32,
}

/// What the application hears about.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriberEvent {
    /// Succeeded for a command (metadata has its own event).
    Succeeded { command: u8, message: String },
    /// Failed for a command.
    Failed { command: u8, message: String },
    /// Metadata arrived and parsed.
    Metadata(Box<DataSet>),
    /// The session failed for good (emitted once; later input is ignored): close and reconnect.
    SessionFailed(SessionFailure),
    /// A new signal index cache is in force for `cache_index`.
    SubscriptionUpdated { cache_index: u8, signals: usize },
    /// Decoded measurements of one data packet.
    Measurements(Vec<ReceivedMeasurement>),
    /// DataStartTime (0x86).
    DataStartTime(i64),
    /// ProcessingComplete (0x87).
    ProcessingComplete(String),
    /// ConfigurationChanged (0x8A).
    ConfigurationChanged,
    /// Notify (0x89) text.
    Notification(String),
    /// UserResponse (0xE0–0xEF).
    UserResponse {
        code: u8,
        command: u8,
        data: Vec<u8>,
    },
    /// A publisher byte sequence that could not be used; the session goes on.
    ProtocolWarning(String),
}

/// Subscriber output.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriberOutput {
    /// Write these command-frame bytes.
    Send(Vec<u8>),
    /// Tell the application.
    Event(SubscriberEvent),
}

/// One signal index cache slot and its TSSC decoder.
#[derive(Debug)]
struct CacheSlot {
    cache: SignalIndexCache,
    tssc: tssc::PacketDecoder,
}

/// Counters kept by the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Measurements delivered.
    pub measurements: u64,
    /// Data packets decoded.
    pub packets: u64,
    /// Data packets dropped (unknown cache slot, TSSC out of sequence, decode error).
    pub dropped_packets: u64,
    /// Measurements whose runtime ID was not in the cache.
    pub unknown_ids: u64,
    /// UpdateCipherKeys received and installed.
    pub cipher_key_updates: u64,
}

/// Subscriber side of one session.
#[derive(Debug)]
pub struct SubscriberSession {
    config: SubscriberSessionConfig,
    limits: SubscriberLimits,
    /// The time of the latest [`SubscriberSession::advance`] (None: no timers).
    now: Option<Instant>,
    /// When [`SubscriberSession::start`] ran.
    started_at: Option<Instant>,
    /// Subscribe acknowledged (Succeeded 0x02 or data) since the last Subscribe.
    acknowledged: bool,
    /// A subscription is wanted (automatic, or asked for), so the subscribe timer runs.
    wants_subscription: bool,
    /// The acknowledgement or the latest data, whichever is later.
    last_data: Option<Instant>,
    failed: bool,
    modes: OperationalModes,
    slots: [Option<CacheSlot>; 2],
    base_times: Option<BaseTimes>,
    /// GSF-compatible data-channel keys (wire.md §8), once the publisher sent them.
    legacy_keys: Option<LegacyKeys>,
    subscribed: bool,
    stats: SubscriberStats,
    scratch: Vec<Measurement>,
    out: VecDeque<SubscriberOutput>,
}

impl SubscriberSession {
    /// A session that has not sent anything yet.
    pub fn new(config: SubscriberSessionConfig) -> Self {
        Self::with_limits(config, SubscriberLimits::default())
    }

    /// A session with explicit bounds and timers.
    pub fn with_limits(config: SubscriberSessionConfig, limits: SubscriberLimits) -> Self {
        Self {
            modes: config.operational_modes(),
            config,
            limits,
            now: None,
            started_at: None,
            acknowledged: false,
            wants_subscription: false,
            last_data: None,
            failed: false,
            slots: [None, None],
            base_times: None,
            subscribed: false,
            stats: SubscriberStats::default(),
            scratch: Vec::new(),
            legacy_keys: None,
            out: VecDeque::new(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &SubscriberSessionConfig {
        &self.config
    }

    /// The bounds and timers.
    pub fn limits(&self) -> &SubscriberLimits {
        &self.limits
    }

    /// True once [`SubscriberEvent::SessionFailed`] was emitted.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// True once the publisher acknowledged the current subscription (Succeeded for Subscribe,
    /// or data).
    pub fn is_acknowledged(&self) -> bool {
        self.acknowledged
    }

    /// Tells the session the time (monotonic; never earlier than the last call) and fires the
    /// timers that expired: at most one [`SubscriberEvent::SessionFailed`].
    pub fn advance(&mut self, now: Instant) {
        let now = self.now.map_or(now, |prev| prev.max(now));
        self.now = Some(now);
        if self.failed {
            return;
        }
        if let Some((deadline, failure)) = self.timer() {
            if now >= deadline {
                let failure = match failure {
                    Timer::Subscribe(since) => SessionFailure::SubscribeTimeout {
                        waited: now.saturating_duration_since(since),
                    },
                    Timer::DataLoss(since) => SessionFailure::DataLoss {
                        silent_for: now.saturating_duration_since(since),
                    },
                };
                self.fail(failure);
            }
        }
    }

    /// When the next timer expires, if one runs: call [`SubscriberSession::advance`] then.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        self.timer().map(|(deadline, _)| deadline)
    }

    fn timer(&self) -> Option<(Instant, Timer)> {
        if !self.wants_subscription {
            return None;
        }
        // Waiting for metadata before the automatic Subscribe counts too.
        if !self.subscribed || !self.acknowledged {
            let since = self.started_at?;
            let t = self.limits.subscribe_timeout?;
            return Some((since + t, Timer::Subscribe(since)));
        }
        let since = self.last_data?;
        let t = self.limits.data_loss_timeout?;
        Some((since + t, Timer::DataLoss(since)))
    }

    fn fail(&mut self, failure: SessionFailure) {
        if !self.failed {
            self.failed = true;
            self.event(SubscriberEvent::SessionFailed(failure));
        }
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<SubscriberOutput> {
        self.out.pop_front()
    }

    /// Sends DefineOperationalModes, then MetadataRefresh and/or Subscribe as configured. Like
    /// the stock subscribers it does not wait for the answer to 0x06 (gsfapi never sends one).
    pub fn start(&mut self) {
        self.started_at = self.now;
        self.wants_subscription = self.config.auto_subscribe;
        self.send(&Command::DefineOperationalModes(self.modes));
        if self.config.auto_request_metadata {
            let filters = self.config.metadata_filters.clone();
            self.request_metadata(&filters);
        } else if self.config.auto_subscribe {
            self.subscribe();
        }
    }

    /// Sends MetadataRefresh.
    pub fn request_metadata(&mut self, filters: &str) {
        let filters = (!filters.is_empty()).then(|| filters.to_owned());
        self.send(&Command::MetadataRefresh { filters });
    }

    /// Sends Subscribe with the configured settings.
    pub fn subscribe(&mut self) {
        let connection_string = self.config.settings.to_connection_string();
        if !self.subscribed {
            // The first subscription of a connection waits from the connection's start (the
            // connect-to-subscribed timeout); one made after an Unsubscribe waits from now.
            if self.started_at.is_none() {
                self.started_at = self.now;
            }
            self.acknowledged = false;
        } else if self.acknowledged {
            // A resubscription restarts the data-loss timer.
            self.last_data = self.now;
        }
        self.subscribed = true;
        self.wants_subscription = true;
        self.send(&Command::Subscribe {
            flags: 0x02,
            connection_string,
        });
    }

    /// Replaces the settings and subscribes again (the publisher sends a new cache).
    pub fn resubscribe(&mut self, settings: SubscriptionSettings) {
        self.config.settings = settings;
        self.subscribe();
    }

    /// Sends Unsubscribe.
    pub fn unsubscribe(&mut self) {
        self.subscribed = false;
        self.acknowledged = false;
        self.wants_subscription = false;
        self.started_at = None;
        self.send(&Command::Unsubscribe);
    }

    /// Asks the publisher for new data-channel keys (RotateCipherKeys, 0x04).
    pub fn rotate_cipher_keys(&mut self) {
        self.send(&Command::RotateCipherKeys);
    }

    /// Sends a user command (0xD0–0xDF).
    pub fn send_user_command(&mut self, code: u8, data: Vec<u8>) {
        self.send(&Command::User { code, data });
    }

    fn send(&mut self, c: &Command) {
        let mut frame = Vec::new();
        c.encode(self.config.encoding, &mut frame);
        self.out.push_back(SubscriberOutput::Send(frame));
    }

    fn event(&mut self, e: SubscriberEvent) {
        self.out.push_back(SubscriberOutput::Event(e));
    }

    fn warn(&mut self, message: String) {
        self.event(SubscriberEvent::ProtocolWarning(message));
    }

    /// Handles one frame body from the publisher (which may hold several responses, gsfapi).
    pub fn handle_frame(&mut self, body: &[u8]) {
        if self.failed {
            return;
        }
        match decode_responses(body) {
            Ok(responses) => {
                for r in responses {
                    if self.failed {
                        break;
                    }
                    self.handle_response(r.code, r.command, r.payload);
                }
            }
            Err(e) => self.warn(format!("malformed response frame: {}", e.failed_message())),
        }
    }

    /// Handles one response body received on a UDP data channel (no frame prefix). Only
    /// DataPacket and BufferBlock may travel over UDP (wire.md §8); anything else in a datagram
    /// is dropped with a warning, so a spoofed datagram can never change the session's state.
    pub fn handle_datagram(&mut self, datagram: &[u8]) {
        if self.failed {
            return;
        }
        match decode_responses(datagram) {
            Ok(responses) => {
                for r in responses {
                    match r.code {
                        rsp::DATA_PACKET | rsp::BUFFER_BLOCK => {
                            self.handle_response(r.code, r.command, r.payload)
                        }
                        other => {
                            self.stats.dropped_packets += 1;
                            self.warn(format!(
                                "response 0x{other:02X} received on the UDP data channel dropped: only data packets and buffer blocks may use it"
                            ));
                        }
                    }
                }
            }
            Err(e) => {
                self.stats.dropped_packets += 1;
                self.warn(format!("malformed datagram: {}", e.failed_message()))
            }
        }
    }

    fn handle_response(&mut self, code: u8, command: u8, payload: &[u8]) {
        match code {
            rsp::DATA_PACKET => self.data_packet(command, payload),
            rsp::SUCCEEDED if command == cmd::METADATA_REFRESH => self.metadata(payload),
            rsp::SUCCEEDED => {
                let message = decode_message(payload, self.config.encoding);
                if command == cmd::SUBSCRIBE && self.subscribed {
                    self.acknowledge();
                }
                self.event(SubscriberEvent::Succeeded { command, message });
            }
            rsp::FAILED => {
                let message = decode_message(payload, self.config.encoding);
                match command {
                    // Connection refused, version refused, subscription refused: nothing this
                    // session can still do (the publisher usually closes next).
                    cmd::CONNECT | cmd::DEFINE_OPERATIONAL_MODES | cmd::SUBSCRIBE => {
                        self.fail(SessionFailure::Refused { command, message })
                    }
                    cmd::METADATA_REFRESH => {
                        // Metadata is optional: subscribe without it (the publisher may allow
                        // the subscription but not the metadata).
                        self.event(SubscriberEvent::Failed { command, message });
                        if self.config.auto_subscribe && !self.subscribed {
                            self.subscribe();
                        }
                    }
                    _ => self.event(SubscriberEvent::Failed { command, message }),
                }
            }
            rsp::UPDATE_SIGNAL_INDEX_CACHE => self.signal_index_cache(payload),
            rsp::UPDATE_BASE_TIMES => match BaseTimes::decode(payload) {
                Ok(b) => self.base_times = Some(b),
                Err(e) => self.warn(format!("bad UpdateBaseTimes: {e}")),
            },
            rsp::DATA_START_TIME => match payloads::decode_data_start_time(payload) {
                Ok(ticks) => self.event(SubscriberEvent::DataStartTime(ticks)),
                Err(e) => self.warn(format!("bad DataStartTime: {}", e.failed_message())),
            },
            rsp::PROCESSING_COMPLETE => {
                let text = decode_message(payload, self.config.encoding);
                self.event(SubscriberEvent::ProcessingComplete(text));
            }
            rsp::NOTIFY => match payloads::Notification::decode(payload, self.config.encoding) {
                // Confirm with the same hash (wire.md §9).
                Ok(n) => {
                    self.send(&Command::ConfirmNotification(n.hash));
                    self.event(SubscriberEvent::Notification(n.message));
                }
                Err(e) => self.warn(format!("bad Notify: {}", e.failed_message())),
            },
            rsp::CONFIGURATION_CHANGED => self.event(SubscriberEvent::ConfigurationChanged),
            rsp::NO_OP => {}
            0xE0..=0xEF => self.event(SubscriberEvent::UserResponse {
                code,
                command,
                data: payload.to_vec(),
            }),
            rsp::UPDATE_CIPHER_KEYS => self.cipher_keys(payload),
            rsp::BUFFER_BLOCK => self.warn(format!(
                "response 0x{code:02X} is not supported by this subscriber; ignored"
            )),
            other => self.warn(format!("unknown response code 0x{other:02X} ignored")),
        }
    }

    /// UpdateCipherKeys (wire.md §8): from now on every DataPacket is AES-256-CBC encrypted
    /// with the set its flag 0x04 names. Confidentiality only: the mode has no integrity.
    fn cipher_keys(&mut self, payload: &[u8]) {
        match payloads::CipherKeys::decode(payload).and_then(|k| k.to_legacy()) {
            Ok(keys) => {
                self.legacy_keys = Some(keys);
                self.stats.cipher_key_updates += 1;
            }
            Err(e) => self.warn(format!("bad UpdateCipherKeys: {}", e.failed_message())),
        }
    }

    /// The publisher acknowledged the subscription: the data-loss timer starts now.
    fn acknowledge(&mut self) {
        if !self.acknowledged {
            self.acknowledged = true;
            self.last_data = self.now;
        }
    }

    fn metadata(&mut self, payload: &[u8]) {
        let limits = ParseLimits {
            max_bytes: self.limits.max_metadata_bytes,
            ..ParseLimits::default()
        };
        let parsed = if payload.is_empty() {
            Ok(DataSet::default())
        } else {
            xml::parse_payload(payload, &limits)
        };
        match parsed {
            Ok(set) => self.event(SubscriberEvent::Metadata(Box::new(set))),
            // Metadata that does not decode is hostile or broken: subscribing without it
            // would hide the fault (docs/subscriber.md).
            Err(e) => return self.fail(SessionFailure::Metadata(e)),
        }
        if self.config.auto_subscribe && !self.subscribed {
            self.subscribe();
        }
    }

    fn signal_index_cache(&mut self, payload: &[u8]) {
        let version = self.modes.version();
        match SignalIndexCache::decode_payload_with_limit(
            payload,
            version,
            self.modes.compress_signal_index_cache(),
            self.config.encoding,
            self.limits.max_cache_bytes,
        ) {
            Ok((index, cache)) => {
                // pyapi writes 0xFF for an uncompressed cache it never patched (wire.md §5);
                // anything but 1 is slot 0.
                let index = u8::from(index == 1);
                let signals = cache.entries.len();
                // The TSSC point table is sized by the largest runtime ID the stream names, and
                // every reset (sequence 0, one small packet) rebuilds it. Bounding it by this
                // cache — its largest ID, and never more than a small multiple of its size —
                // keeps a hostile publisher from buying a million-point rebuild with a 10-byte
                // packet by announcing one huge runtime ID. Every stock publisher numbers runtime
                // IDs densely from 0, so no real cache comes near the bound; IDs above it could
                // not be delivered in a decodable way anyway.
                let dense_bound = i32::try_from(cache.entries.len().saturating_mul(2))
                    .unwrap_or(i32::MAX)
                    .saturating_add(MIN_TSSC_ID_BOUND);
                let max_id = cache
                    .entries
                    .iter()
                    .map(|e| e.runtime_id)
                    .max()
                    .unwrap_or(0)
                    .clamp(0, dense_bound);
                if let Some(slot) = self.slots.get_mut(usize::from(index)) {
                    *slot = Some(CacheSlot {
                        cache,
                        tssc: tssc::PacketDecoder::with_max_id(max_id),
                    });
                }
                if version > 1 {
                    self.send(&Command::ConfirmUpdateSignalIndexCache);
                }
                self.event(SubscriberEvent::SubscriptionUpdated {
                    cache_index: index,
                    signals,
                });
            }
            Err(e) => self.fail(SessionFailure::SignalIndexCache(e)),
        }
    }

    fn data_packet(&mut self, command: u8, payload: &[u8]) {
        if let Some(keys) = &self.legacy_keys {
            // The legacy cipher works on the whole response body (its length changes).
            let mut body = Vec::with_capacity(payload.len() + 6);
            body.extend_from_slice(&[rsp::DATA_PACKET, command]);
            body.extend_from_slice(&(payload.len() as i32).to_be_bytes());
            body.extend_from_slice(payload);
            match legacy_cbc::decrypt_data_packet(&body, keys) {
                Ok(plain) => {
                    let inner = plain
                        .get(sttp_wire::frame::RESPONSE_HEADER_LEN..)
                        .unwrap_or_default();
                    return self.decode_data_packet(inner);
                }
                Err(e) => {
                    self.stats.dropped_packets += 1;
                    return self.warn(format!("data packet could not be decrypted: {e}"));
                }
            }
        }
        self.decode_data_packet(payload)
    }

    fn decode_data_packet(&mut self, payload: &[u8]) {
        let (header, body) = match DataPacketHeader::decode(payload) {
            Ok(x) => x,
            Err(e) => {
                self.stats.dropped_packets += 1;
                return self.warn(format!("bad data packet: {e}"));
            }
        };
        if header.flags & sttp_wire::packet::flags::CIPHER_INDEX != 0 {
            self.stats.dropped_packets += 1;
            return self
                .warn("encrypted data packet received but no cipher keys are in use".into());
        }
        let slot_index = if self.modes.version() > 1 {
            header.cache_index()
        } else {
            0
        };
        let Some(slot) = self.slots.get_mut(slot_index).and_then(Option::as_mut) else {
            self.stats.dropped_packets += 1;
            return self.warn(format!(
                "data packet for empty signal index cache slot {slot_index} dropped"
            ));
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let result = if header.is_tssc() {
            slot.tssc.decode(body, &mut scratch).map(|outcome| match outcome {
                PacketOutcome::Decoded => None,
                PacketOutcome::OutOfSequence { expected, got } => Some(format!(
                    "TSSC packet out of sequence (expected {expected}, got {got}); waiting for a reset"
                )),
            })
        } else {
            let opts = CompactOptions {
                include_time: self.config.settings.include_time,
                millisecond_resolution: self.config.settings.use_millisecond_resolution,
            };
            let count = usize::try_from(header.count).unwrap_or(0);
            compact::decode(body, count, opts, self.base_times.as_ref(), &mut scratch)
                .map(|()| None)
        };
        let mut delivered = Vec::with_capacity(scratch.len());
        let mut unknown = 0u64;
        for m in &scratch {
            match slot.cache.signal_id(m.runtime_id) {
                Some(signal_id) => delivered.push(ReceivedMeasurement {
                    signal_id,
                    timestamp: m.timestamp,
                    value: m.value,
                    flags: m.flags,
                }),
                None => unknown += 1,
            }
        }
        self.scratch = scratch;
        self.stats.unknown_ids += unknown;
        match result {
            Ok(None) => self.stats.packets += 1,
            Ok(Some(w)) => {
                self.stats.dropped_packets += 1;
                self.warn(w);
            }
            Err(e) => {
                self.stats.dropped_packets += 1;
                self.warn(format!("undecodable data packet: {e}"));
            }
        }
        if !delivered.is_empty() {
            // Data is an acknowledgement too, and feeds the data-loss timer.
            if self.subscribed {
                self.acknowledge();
                self.last_data = self.now;
            }
            self.stats.measurements += delivered.len() as u64;
            self.event(SubscriberEvent::Measurements(delivered));
        }
    }
}

/// Which timer runs, and since when.
#[derive(Debug, Clone, Copy)]
enum Timer {
    Subscribe(Instant),
    DataLoss(Instant),
}
