//! Publisher side of one command-channel session (wire.md §1–§5).
//!
//! Call order: for every complete frame body from the subscriber call [`PublisherSession::handle_frame`];
//! every 5 s call [`PublisherSession::handle_keepalive`]; after each call drain
//! [`PublisherSession::poll_output`] until `None`, writing `Send` bytes in order and applying
//! the other outputs to the data plane.
//!
//! The double-buffered signal index cache of protocol version ≥ 2 (wire.md §5) is modelled by
//! [`CacheState`]: a new subscription's cache goes out with the *other* slot index and takes
//! effect only when the subscriber confirms it with 0x0A; a subscription arriving while one is
//! awaiting confirmation is queued, last one wins.

use crate::catalog::Catalog;
use crate::command::{code as cmd, Command};
use crate::connstr::{ConnectionString, SubscriptionSettings};
use crate::encoding::StringEncoding;
use crate::error::ProtoError;
use crate::filter::EvalContext;
use crate::metadata::{self, xml};
use crate::opmodes::OperationalModes;
use crate::response::{code as rsp, encode_response};
use crate::sic::{SignalIndexCache, SignalIndexEntry};
use crate::{ext, filter, gzip};
use std::collections::VecDeque;
use uuid::Uuid;

/// Protocol versions this publisher accepts (wire.md §2).
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u8> = 1..=3;
/// Malformed commands tolerated before the session is closed.
pub const MAX_BAD_COMMANDS: u32 = 16;

/// Per-session settings chosen by the runtime.
#[derive(Debug, Clone)]
pub struct PublisherSessionConfig {
    /// Subscriber ID written into signal index caches.
    pub subscriber_id: Uuid,
    /// Name the publisher gives in messages.
    pub publisher_name: String,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum PublisherOutput {
    /// Write these frame bytes to the subscriber, in order.
    Send(Vec<u8>),
    /// Route these `(global signal index, runtime id)` pairs to the subscriber, with packets
    /// flagged for `cache_index`, restarting the encoder with `settings`.
    Activate {
        routes: Vec<(u32, i32)>,
        cache_index: u8,
        settings: Box<SubscriptionSettings>,
        modes: OperationalModes,
    },
    /// Stop publishing to the subscriber (Unsubscribe).
    Deactivate,
    /// A UDP subscription from a subscriber that did not ask for our authenticated extension,
    /// on a session the runtime offers GSF-compatible keys to
    /// ([`PublisherSession::set_legacy_cipher_keys_offered`]): send UpdateCipherKeys (wire.md §8)
    /// before the next `Send` and seal its datagrams with AES-256-CBC. Emitted before the
    /// subscription's signal index cache.
    StartLegacyCipherKeys,
    /// The subscriber asked for new data-channel keys (RotateCipherKeys, 0x04); only emitted
    /// while the runtime says keys are in use ([`PublisherSession::set_cipher_keys_in_use`]).
    RotateCipherKeys,
    /// A user command (0xD0–0xDF) for the application.
    UserCommand { code: u8, data: Vec<u8> },
    /// UpdateProcessingInterval.
    ProcessingInterval(i32),
    /// Close the connection once the queued bytes are written; the reason goes to the log.
    Close { reason: String },
    /// Something worth logging at info level.
    Log(String),
}

/// A subscription whose cache was sent and not yet confirmed, or queued behind one.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    routes: Vec<(u32, i32)>,
    cache: SignalIndexCache,
    settings: Box<SubscriptionSettings>,
}

/// Signal index cache double-buffer (wire.md §5).
#[derive(Debug, Clone, PartialEq, Default)]
enum CacheState {
    /// No subscription yet.
    #[default]
    Idle,
    /// Cache `index` sent, awaiting 0x0A; `queued` is a newer subscription to send after it.
    AwaitingConfirm {
        index: u8,
        pending: Box<Pending>,
        queued: Option<Box<Pending>>,
    },
    /// Cache `index` confirmed and routed.
    Active { index: u8 },
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for DefineOperationalModes.
    AwaitingModes,
    /// Modes accepted; commands are served.
    Ready,
    /// Closing; further input is ignored.
    Closed,
}

/// Publisher side of one session.
#[derive(Debug)]
pub struct PublisherSession {
    config: PublisherSessionConfig,
    phase: Phase,
    modes: OperationalModes,
    encoding: StringEncoding,
    cache: CacheState,
    /// Slot index of the last confirmed cache (starts at 1 so the first cache goes out as 0).
    current_index: u8,
    subscribed: bool,
    cipher_keys_in_use: bool,
    legacy_cipher_keys_offered: bool,
    bad_commands: u32,
    out: VecDeque<PublisherOutput>,
}

impl PublisherSession {
    /// A session waiting for the subscriber's DefineOperationalModes.
    pub fn new(config: PublisherSessionConfig) -> Self {
        Self {
            config,
            phase: Phase::AwaitingModes,
            modes: OperationalModes(0),
            encoding: StringEncoding::Utf8,
            cache: CacheState::Idle,
            current_index: 1,
            subscribed: false,
            cipher_keys_in_use: false,
            legacy_cipher_keys_offered: false,
            bad_commands: 0,
            out: VecDeque::new(),
        }
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Negotiated operational modes (zero before DefineOperationalModes).
    pub fn modes(&self) -> OperationalModes {
        self.modes
    }

    /// True while a subscription is in force.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<PublisherOutput> {
        self.out.pop_front()
    }

    /// The 5-second keep-alive (wire.md §1.2 NoOP), only once modes are accepted so that the
    /// first response a goapi subscriber sees answers 0x06.
    pub fn handle_keepalive(&mut self) {
        if self.phase == Phase::Ready {
            self.respond(rsp::NO_OP, cmd::SUBSCRIBE, &[]);
        }
    }

    /// Tells the subscriber the metadata changed (0x8A).
    pub fn notify_configuration_changed(&mut self) {
        if self.phase == Phase::Ready {
            self.respond(rsp::CONFIGURATION_CHANGED, cmd::SUBSCRIBE, &[]);
        }
    }

    /// Tells the session whether the data channel is encrypted, which decides whether a
    /// RotateCipherKeys command is honoured or refused.
    pub fn set_cipher_keys_in_use(&mut self, in_use: bool) {
        self.cipher_keys_in_use = in_use;
    }

    /// Whether UDP subscriptions that do not ask for our authenticated extension get
    /// GSF-compatible AES-256-CBC keys (the runtime offers them on TLS-authenticated
    /// connections, where the keys are not sent in the clear).
    pub fn set_legacy_cipher_keys_offered(&mut self, offered: bool) {
        self.legacy_cipher_keys_offered = offered;
    }

    /// Answers a user command with a user response (0xE0–0xEF).
    pub fn send_user_response(&mut self, response: u8, command: u8, data: &[u8]) {
        self.respond(response, command, data);
    }

    /// Handles one frame body from the subscriber.
    pub fn handle_frame(&mut self, body: &[u8], catalog: &Catalog, now_ticks: i64) {
        if self.phase == Phase::Closed {
            return;
        }
        let code = body.first().copied().unwrap_or(0);
        let command = match Command::decode(body, self.encoding) {
            Ok(c) => c,
            Err(e) => return self.bad_command(code, &e),
        };
        if self.phase == Phase::AwaitingModes
            && !matches!(command, Command::DefineOperationalModes(_))
        {
            return self.fail(
                code,
                "operational modes must be defined (command 0x06) before any other command",
            );
        }
        match command {
            Command::DefineOperationalModes(modes) => self.define_modes(modes),
            Command::MetadataRefresh { filters } => {
                self.metadata_refresh(filters, catalog, now_ticks)
            }
            Command::Subscribe {
                flags,
                connection_string,
            } => self.subscribe(flags, &connection_string, catalog, now_ticks),
            Command::Unsubscribe => {
                self.subscribed = false;
                // A cache already sent stays outstanding until the subscriber confirms it:
                // forgetting it would let the next cache reuse its slot while the confirmation
                // of this one is still on its way (wire.md §5). A queued one is dropped.
                if let CacheState::AwaitingConfirm { queued, .. } = &mut self.cache {
                    *queued = None;
                }
                self.out.push_back(PublisherOutput::Deactivate);
                self.succeed(cmd::UNSUBSCRIBE, "Client unsubscribed.");
            }
            Command::ConfirmUpdateSignalIndexCache => self.confirm_cache(),
            Command::UpdateProcessingInterval(ms) => {
                self.out.push_back(PublisherOutput::ProcessingInterval(ms));
                self.succeed(
                    cmd::UPDATE_PROCESSING_INTERVAL,
                    &format!("New processing interval of {ms} assigned."),
                );
            }
            Command::RotateCipherKeys if self.cipher_keys_in_use => {
                self.out.push_back(PublisherOutput::RotateCipherKeys);
                self.succeed(cmd::ROTATE_CIPHER_KEYS, "New cipher keys requested.");
            }
            Command::RotateCipherKeys => self.fail(
                cmd::ROTATE_CIPHER_KEYS,
                "cipher keys are not in use: this session has no encrypted data channel",
            ),
            Command::User { code, data } => self
                .out
                .push_back(PublisherOutput::UserCommand { code, data }),
            Command::ConfirmNotification(_)
            | Command::ConfirmBufferBlock(_)
            | Command::ConfirmUpdateBaseTimes
            | Command::ConfirmUpdateCipherKeys => {}
            Command::GetPrimaryMetadataSchema
            | Command::GetSignalSelectionSchema
            | Command::Unknown { .. } => {
                self.fail(code, &format!("unrecognized server command 0x{code:02X}"))
            }
        }
    }

    fn define_modes(&mut self, modes: OperationalModes) {
        let version = modes.version();
        if !SUPPORTED_VERSIONS.contains(&version) {
            self.fail(
                cmd::DEFINE_OPERATIONAL_MODES,
                &format!(
                    "STTP protocol version {version} not supported: this publisher speaks versions 1 to 3"
                ),
            );
            return self.close(format!("unsupported protocol version {version}"));
        }
        if self.subscribed {
            return self.fail(
                cmd::DEFINE_OPERATIONAL_MODES,
                "operational modes cannot change while subscribed",
            );
        }
        self.modes = modes;
        self.encoding = modes.encoding();
        self.phase = Phase::Ready;
        let message = format!(
            "STTP v{version} client connection accepted: {} data packets, {} strings{}{}",
            if modes.use_tssc() { "TSSC" } else { "compact" },
            encoding_name(self.encoding),
            if modes.gzip_metadata() {
                ", gzip metadata"
            } else {
                ""
            },
            if modes.gzip_signal_index_cache() {
                ", gzip signal index cache"
            } else {
                ""
            },
        );
        self.out.push_back(PublisherOutput::Log(message.clone()));
        self.succeed(cmd::DEFINE_OPERATIONAL_MODES, &message);
    }

    fn metadata_refresh(&mut self, filters: Option<String>, catalog: &Catalog, now_ticks: i64) {
        let filters = filters.filter(|f| !f.trim().is_empty());
        let payload = match filters {
            None => {
                let (xml, gz) = catalog.metadata_xml();
                if self.modes.gzip_metadata() {
                    gz.to_vec()
                } else {
                    xml.as_bytes().to_vec()
                }
            }
            Some(f) => {
                let ctx = EvalContext { now_ticks };
                match metadata::active::apply_metadata_filters(catalog.metadata(), &f, &ctx) {
                    Ok(set) => {
                        let xml = xml::write_xml(&set);
                        if self.modes.gzip_metadata() {
                            gzip::compress(xml.as_bytes())
                        } else {
                            xml.into_bytes()
                        }
                    }
                    Err(e) => {
                        return self.fail(
                            cmd::METADATA_REFRESH,
                            &format!("metadata filter rejected: {e}"),
                        )
                    }
                }
            }
        };
        self.respond(rsp::SUCCEEDED, cmd::METADATA_REFRESH, &payload);
    }

    fn subscribe(&mut self, flags: u8, text: &str, catalog: &Catalog, now_ticks: i64) {
        match self.try_subscribe(flags, text, catalog, now_ticks) {
            Ok(pending) => {
                let signals = pending.routes.len();
                let refused = pending.cache.unauthorized.len();
                let data_channel = pending.settings.data_channel;
                // Operators want to know which software subscribed (connection string
                // `assemblyInfo`, wire.md §3).
                let client = pending
                    .settings
                    .assembly_info
                    .as_ref()
                    .map(|a| {
                        format!(
                            " (client: {} {})",
                            a.get("source").unwrap_or("unknown"),
                            a.get("version").unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                self.subscribed = true;
                // Legacy data-channel keys go out before the signal index cache, as gsfapi
                // sends them, so a stock subscriber holds them before any datagram can arrive
                // (data waits for the cache; wire.md §5, §8).
                if data_channel.is_some()
                    && self.legacy_cipher_keys_offered
                    && ext::requested_udp_cipher(&pending.settings.extra).is_none()
                {
                    self.out.push_back(PublisherOutput::StartLegacyCipherKeys);
                }
                self.install(pending);
                let message = match data_channel {
                    // TSSC state cannot survive datagram loss: stock publishers fall back to
                    // the compact format on a UDP data channel (wire.md §8), and so do we.
                    Some(d) => format!(
                        "Client subscribed using compact format over UDP port {} with {signals} signals.{}",
                        d.local_port,
                        if self.modes.use_tssc() {
                            " TSSC is not used on a UDP data channel."
                        } else {
                            ""
                        }
                    ),
                    None => format!(
                        "Client subscribed using {} over TCP with {signals} signals.",
                        if self.modes.use_tssc() {
                            "TSSC compression"
                        } else {
                            "compact format"
                        },
                    ),
                };
                let message = with_refused_note(message, refused);
                self.out
                    .push_back(PublisherOutput::Log(format!("{message}{client}")));
                self.succeed(cmd::SUBSCRIBE, &message);
            }
            Err(reason) => self.fail(cmd::SUBSCRIBE, &reason),
        }
    }

    fn try_subscribe(
        &self,
        flags: u8,
        text: &str,
        catalog: &Catalog,
        now_ticks: i64,
    ) -> Result<Pending, String> {
        if flags & 0x01 != 0 {
            return Err("synchronized subscriptions are obsolete and not supported".into());
        }
        let cs = ConnectionString::parse(text).map_err(|e| e.failed_message())?;
        let settings =
            SubscriptionSettings::from_connection_string(&cs).map_err(|e| e.failed_message())?;
        if settings.data_channel.is_some_and(|d| d.local_port == 0) {
            return Err("dataChannel localport must be a UDP port from 1 to 65535".into());
        }
        if settings.start_time_constraint.is_some() || settings.stop_time_constraint.is_some() {
            return Err("temporal subscriptions (startTimeConstraint/stopTimeConstraint) are not supported by this publisher".into());
        }
        let ctx = EvalContext { now_ticks };
        // Access control (crate::acl): a restricted catalog selects only allowed points and
        // reports the refused ones for the cache's unauthorized list (wire.md §5).
        let selection = catalog
            .select_signals_split(&settings.filter_expression, &ctx)
            .map_err(|e: filter::FilterError| e.to_string())?;
        let selected = selection.allowed;
        let refused = (selection.refused.iter())
            .filter_map(|&i| catalog.signals().get(i as usize).map(|s| s.signal_id))
            .collect();
        let mut routes = Vec::with_capacity(selected.len());
        let mut entries = Vec::with_capacity(selected.len());
        for (runtime_id, &signal) in selected.iter().enumerate() {
            let Some(info) = catalog.signal(signal) else {
                continue;
            };
            let runtime_id = runtime_id as i32;
            routes.push((signal, runtime_id));
            entries.push(SignalIndexEntry {
                runtime_id,
                signal_id: info.signal_id,
                source: info.source.clone(),
                key_id: info.key_id,
            });
        }
        Ok(Pending {
            routes,
            cache: SignalIndexCache::new(self.config.subscriber_id, entries, refused),
            settings: Box::new(settings),
        })
    }

    /// Sends or queues a subscription's cache per the double-buffer rules (wire.md §5).
    fn install(&mut self, pending: Pending) {
        let version = self.modes.version();
        if version <= 1 {
            self.send_cache(&pending.cache, 0);
            self.activate(pending, 0);
            return;
        }
        match &mut self.cache {
            CacheState::AwaitingConfirm { queued, .. } => *queued = Some(Box::new(pending)),
            _ => {
                let index = self.current_index ^ 1;
                self.send_cache(&pending.cache, index);
                self.cache = CacheState::AwaitingConfirm {
                    index,
                    pending: Box::new(pending),
                    queued: None,
                };
            }
        }
    }

    fn confirm_cache(&mut self) {
        let state = std::mem::take(&mut self.cache);
        match state {
            CacheState::AwaitingConfirm {
                index,
                pending,
                queued,
            } => {
                self.current_index = index;
                if self.subscribed {
                    self.activate(*pending, index);
                }
                self.cache = CacheState::Active { index };
                if let Some(next) = queued {
                    self.install(*next);
                }
            }
            other => {
                self.cache = other;
                self.out.push_back(PublisherOutput::Log(
                    "unexpected signal index cache confirmation ignored".into(),
                ));
            }
        }
    }

    fn activate(&mut self, pending: Pending, cache_index: u8) {
        self.out.push_back(PublisherOutput::Activate {
            routes: pending.routes,
            cache_index,
            settings: pending.settings,
            modes: self.modes,
        });
    }

    fn send_cache(&mut self, cache: &SignalIndexCache, index: u8) {
        let payload = cache.encode_payload(
            self.modes.version(),
            index,
            self.modes.gzip_signal_index_cache(),
            self.encoding,
        );
        self.respond(rsp::UPDATE_SIGNAL_INDEX_CACHE, cmd::SUBSCRIBE, &payload);
    }

    fn bad_command(&mut self, code: u8, e: &ProtoError) {
        self.bad_commands += 1;
        self.fail(
            code,
            &format!("malformed command 0x{code:02X}: {}", e.failed_message()),
        );
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.close(format!(
                "{} malformed commands; last: {}",
                self.bad_commands,
                e.failed_message()
            ));
        }
    }

    fn close(&mut self, reason: String) {
        self.phase = Phase::Closed;
        self.out.push_back(PublisherOutput::Close { reason });
    }

    fn succeed(&mut self, command: u8, message: &str) {
        let bytes = self.encoding.encode(message);
        self.respond(rsp::SUCCEEDED, command, &bytes);
    }

    fn fail(&mut self, command: u8, message: &str) {
        let bytes = self.encoding.encode(message);
        self.respond(rsp::FAILED, command, &bytes);
    }

    fn respond(&mut self, code: u8, command: u8, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_response(&mut frame, code, command, payload);
        self.out.push_back(PublisherOutput::Send(frame));
    }
}

/// Adds the access-control note to a Subscribe reply when points were refused.
fn with_refused_note(message: String, refused: usize) -> String {
    match refused {
        0 => message,
        1 => format!("{message} 1 requested point was refused by access control."),
        n => format!("{message} {n} requested points were refused by access control."),
    }
}

fn encoding_name(e: StringEncoding) -> &'static str {
    match e {
        StringEncoding::Utf8 => "UTF-8",
        StringEncoding::Utf16Le => "UTF-16LE",
        StringEncoding::Utf16Be => "UTF-16BE",
        StringEncoding::Ansi => "ANSI",
    }
}
