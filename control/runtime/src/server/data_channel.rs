//! The data-plane side of one connection: turns the session's Activate / Deactivate /
//! ProcessingInterval / RotateCipherKeys outputs into engine commands, chooses TCP or UDP
//! delivery (wire.md §8), and runs the authenticated-UDP key schedule ([`DataChannelKeys`])
//! when the subscriber asked for it (`sttpExt={udpCipher=aes-256-gcm}`, wire.md §11).
//!
//! With an encrypted data channel nothing is routed before the subscriber has confirmed its
//! first key, so not one datagram is sealed under a key it does not hold.

use super::data_keys::{Announcement, DataChannelKeys};
use super::settings::encoder_settings;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use sttp_dataplane::{Delivery, SubscriptionHandle};
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::ext::{self, ExtMessage, UdpCipher};
use sttp_proto::opmodes::OperationalModes;

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

    /// RotateCipherKeys from the subscriber.
    pub fn rotate(&mut self, now: Instant) -> Effects {
        let mut fx = Effects::default();
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
        self.keys.as_ref().and_then(DataChannelKeys::next_wakeup)
    }
}

fn announce(a: &Announcement) -> (u8, u8, Vec<u8>) {
    let message = ExtMessage::KeyAnnounce {
        epoch: a.epoch,
        key: a.key,
    };
    (ext::USER_RESPONSE, ext::USER_COMMAND, message.encode())
}
