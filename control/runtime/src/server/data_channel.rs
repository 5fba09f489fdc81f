//! The data-plane side of one connection: turns the session's Activate / Deactivate /
//! ProcessingInterval / RotateCipherKeys outputs into engine commands, chooses TCP or UDP
//! delivery (wire.md §8), and runs the authenticated-UDP key schedule ([`DataChannelKeys`])
//! when the subscriber asked for it (`sttpExt={udpCipher=aes-256-gcm}`, wire.md §11).
//!
//! With an encrypted data channel nothing is routed before the subscriber has confirmed its
//! first key, so not one datagram is sealed under a key it does not hold.
//!
//! Stock subscribers on a TLS-authenticated connection can instead get GSF-compatible
//! AES-256-CBC keys (UpdateCipherKeys, wire.md §8): confidentiality only, no integrity. Those
//! keys go out before the subscription's signal index cache, and a rotation switches to the set
//! the subscriber already holds (regenerate the current set, flip the index), so no rotation
//! loses a datagram either.

use super::data_keys::{Announcement, DataChannelKeys};
use super::settings::encoder_settings;
use ring::rand::SystemRandom;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use sttp_dataplane::{Delivery, SubscriptionHandle};
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::ext::{self, ExtMessage, UdpCipher};
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::payloads::CipherKeys;
use sttp_proto::response::{code as rsp, encode_response};
use sttp_wire::legacy_cbc::{self, LegacyKeys};

/// One activation, kept to re-apply a new processing interval or to run once keys are in.
#[derive(Debug, Clone)]
struct Activation {
    routes: Vec<(u32, i32)>,
    cache_index: u8,
    settings: Box<SubscriptionSettings>,
    modes: OperationalModes,
}

/// What the connection must do after an event.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Whole response frames to write to the command channel before anything else queued.
    pub frames: Vec<Vec<u8>>,
    /// User responses (code, in-response-to, data) to send on the command channel, in order.
    pub responses: Vec<(u8, u8, Vec<u8>)>,
    /// Lines for the log.
    pub logs: Vec<String>,
    /// Whether the session should now honour RotateCipherKeys.
    pub keys_in_use: Option<bool>,
}

/// The data-plane side of one connection.
pub(super) struct DataChannel {
    handle: SubscriptionHandle,
    peer: SocketAddr,
    processing_interval: i32,
    active: Option<Activation>,
    /// An activation waiting for the first key's confirmation.
    deferred: Option<Activation>,
    keys: Option<DataChannelKeys>,
    rotation: Option<Duration>,
    /// GSF-compatible keys in use, and when they rotate next.
    legacy: Option<(LegacyKeys, Option<Instant>)>,
}

impl DataChannel {
    pub fn new(handle: SubscriptionHandle, peer: SocketAddr, rotation: Option<Duration>) -> Self {
        Self {
            handle,
            peer,
            processing_interval: -1,
            active: None,
            deferred: None,
            keys: None,
            rotation,
            legacy: None,
        }
    }

    /// Where this activation's packets go.
    fn delivery(&self, settings: &SubscriptionSettings) -> Delivery {
        match settings.data_channel {
            Some(d) => Delivery::Udp {
                dest: SocketAddr::new(self.peer.ip(), d.local_port),
            },
            None => Delivery::Tcp,
        }
    }

    fn apply(&mut self, a: &Activation) {
        if a.settings.processing_interval != -1 {
            self.processing_interval = a.settings.processing_interval;
        }
        self.handle.activate(
            a.routes.clone(),
            a.cache_index,
            encoder_settings(&a.settings, a.modes, self.processing_interval),
            self.delivery(&a.settings),
        );
    }

    /// The session activated a confirmed cache.
    pub fn activate(
        &mut self,
        routes: Vec<(u32, i32)>,
        cache_index: u8,
        settings: Box<SubscriptionSettings>,
        modes: OperationalModes,
        now: Instant,
    ) -> Effects {
        let mut fx = Effects::default();
        let wants_gcm = settings.data_channel.is_some()
            && ext::requested_udp_cipher(&settings.extra) == Some(UdpCipher::Aes256Gcm);
        let a = Activation {
            routes,
            cache_index,
            settings,
            modes,
        };
        if !wants_gcm {
            if self.keys.take().is_some() {
                self.handle.set_sealer(None);
                fx.keys_in_use = Some(false);
                fx.logs
                    .push("data channel no longer encrypted at the subscriber's request".into());
            }
            self.apply(&a);
            self.active = Some(a);
            return fx;
        }
        let keys = self
            .keys
            .get_or_insert_with(|| DataChannelKeys::new(self.rotation));
        if keys.is_active() {
            self.apply(&a);
            self.active = Some(a);
            return fx;
        }
        match keys.rotate(now) {
            Ok(announcement) => {
                fx.responses.push(announce(&announcement));
                fx.keys_in_use = Some(true);
                fx.logs.push(format!(
                    "authenticated UDP data channel: key epoch {} announced; data starts once the subscriber confirms it",
                    announcement.epoch
                ));
                self.deferred = Some(a);
            }
            Err(e) => fx.logs.push(format!("data channel not started: {e}")),
        }
        fx
    }

    /// The session deactivated (Unsubscribe).
    pub fn deactivate(&mut self) {
        self.active = None;
        self.deferred = None;
        self.handle.deactivate();
    }

    /// UpdateProcessingInterval.
    pub fn processing_interval(&mut self, ms: i32) {
        self.processing_interval = ms;
        if let Some(a) = self.active.clone() {
            let mut a = a;
            a.settings.processing_interval = -1;
            self.apply(&a);
        }
    }

    /// A user command: handled here if it is one of our extension messages (`Some`), otherwise
    /// left to the application (`None`).
    pub fn user_command(&mut self, code: u8, data: &[u8], now: Instant) -> Option<Effects> {
        let message = match ExtMessage::decode(code, data) {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => {
                let mut fx = Effects::default();
                fx.logs
                    .push(format!("malformed extension command ignored: {e}"));
                return Some(fx);
            }
        };
        let mut fx = Effects::default();
        match message {
            ExtMessage::KeyConfirm { epoch } => {
                let Some(keys) = self.keys.as_mut() else {
                    fx.logs.push(format!(
                        "key confirmation for epoch {epoch} ignored: no encrypted data channel"
                    ));
                    return Some(fx);
                };
                match keys.confirm(epoch, now) {
                    Some(sealer) => {
                        fx.logs.push(format!(
                            "data channel now sealed with {}",
                            sealer.describe()
                        ));
                        self.handle.set_sealer(Some(sealer));
                        if let Some(a) = self.deferred.take() {
                            self.apply(&a);
                            self.active = Some(a);
                        }
                    }
                    None => fx
                        .logs
                        .push(format!("stale key confirmation for epoch {epoch} ignored")),
                }
            }
            other => fx.logs.push(format!(
                "extension message {other:?} ignored by the publisher"
            )),
        }
        Some(fx)
    }

    /// Starts GSF-compatible keys for a stock subscriber's UDP data channel (once).
    pub fn start_legacy(&mut self, now: Instant) -> Effects {
        let mut fx = Effects::default();
        if self.legacy.is_some() {
            return fx;
        }
        match LegacyKeys::generate(&SystemRandom::new()) {
            Ok(keys) => {
                fx.frames.push(update_cipher_keys(&keys, CMD_SUBSCRIBE));
                self.handle
                    .set_sealer(Some(Box::new(CbcSealer(keys.clone()))));
                self.legacy = Some((keys, self.rotation.map(|p| now + p)));
                fx.keys_in_use = Some(true);
                fx.logs.push(
                    "UDP data channel encrypted with GSF-compatible AES-256-CBC keys (confidentiality only, no integrity)".into(),
                );
            }
            Err(_) => fx
                .logs
                .push("the system random source failed; data channel left unencrypted".into()),
        }
        fx
    }

    fn rotate_legacy(&mut self, now: Instant, command: u8, fx: &mut Effects) {
        let Some((keys, next)) = self.legacy.as_mut() else {
            return;
        };
        match keys.rotate(&SystemRandom::new()) {
            Ok(()) => {
                *next = self.rotation.map(|p| now + p);
                fx.frames.push(update_cipher_keys(keys, command));
                self.handle
                    .set_sealer(Some(Box::new(CbcSealer(keys.clone()))));
                fx.logs.push(format!(
                    "legacy cipher keys rotated: now key set {}",
                    keys.index
                ));
            }
            Err(_) => fx
                .logs
                .push("legacy key rotation failed: no randomness".into()),
        }
    }

    /// RotateCipherKeys from the subscriber.
    pub fn rotate(&mut self, now: Instant) -> Effects {
        let mut fx = Effects::default();
        self.rotate_legacy(now, CMD_ROTATE_CIPHER_KEYS, &mut fx);
        if let Some(keys) = self.keys.as_mut() {
            match keys.rotate(now) {
                Ok(a) => {
                    fx.logs.push(format!(
                        "key rotation requested: epoch {} announced",
                        a.epoch
                    ));
                    fx.responses.push(announce(&a));
                }
                Err(e) => fx.logs.push(format!("key rotation failed: {e}")),
            }
        }
        fx
    }

    /// Periodic work: repeat an unconfirmed announcement, rotate on the period.
    pub fn tick(&mut self, now: Instant) -> Effects {
        let mut fx = Effects::default();
        if self
            .legacy
            .as_ref()
            .and_then(|(_, next)| *next)
            .is_some_and(|t| now >= t)
        {
            self.rotate_legacy(now, CMD_SUBSCRIBE, &mut fx);
        }
        if let Some(due) = self.keys.as_mut().and_then(|k| k.due(now)) {
            match due {
                Ok(a) => fx.responses.push(announce(&a)),
                Err(e) => fx.logs.push(format!("key rotation failed: {e}")),
            }
        }
        fx
    }

    /// When [`DataChannel::tick`] next has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let gcm = self.keys.as_ref().and_then(DataChannelKeys::next_wakeup);
        let cbc = self.legacy.as_ref().and_then(|(_, next)| *next);
        match (gcm, cbc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Subscribe command code, which UpdateCipherKeys answers on a new subscription.
const CMD_SUBSCRIBE: u8 = 0x02;
/// RotateCipherKeys command code.
const CMD_ROTATE_CIPHER_KEYS: u8 = 0x04;

/// The UpdateCipherKeys frame for `keys` (wire.md §8).
fn update_cipher_keys(keys: &LegacyKeys, command: u8) -> Vec<u8> {
    let mut frame = Vec::with_capacity(128);
    encode_response(
        &mut frame,
        rsp::UPDATE_CIPHER_KEYS,
        command,
        &CipherKeys::from_legacy(keys).encode(),
    );
    frame
}

/// The worker-side sealer of the legacy cipher: encrypts each DataPacket with the current set.
struct CbcSealer(LegacyKeys);

impl sttp_dataplane::Sealer for CbcSealer {
    fn seal(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        match legacy_cbc::encrypt_data_packet(body, &self.0) {
            Ok(sealed) => {
                out.extend_from_slice(&sealed);
                true
            }
            Err(_) => false,
        }
    }

    fn overhead(&self) -> usize {
        legacy_cbc::BLOCK_LEN
    }

    fn describe(&self) -> String {
        format!("aes-256-cbc (legacy) key set {}", self.0.index)
    }
}

fn announce(a: &Announcement) -> (u8, u8, Vec<u8>) {
    let message = ExtMessage::KeyAnnounce {
        epoch: a.epoch,
        key: a.key,
    };
    (ext::USER_RESPONSE, ext::USER_COMMAND, message.encode())
}
