//! Keys of one subscription's authenticated UDP data channel (our AES-256-GCM extension,
//! wire.md §11): generation, announcement over the command channel, and the switch.
//!
//! The rule that makes rotation lossless: the publisher announces a new key over TCP and keeps
//! sealing with the old one until the subscriber confirms it has installed the new one (user
//! command `KeyConfirm`). Only then does the worker switch. A datagram can therefore never
//! arrive under a key its subscriber does not hold, and an unconfirmed announcement is simply
//! repeated — the old key stays in use meanwhile, so nothing stalls. Every epoch has a fresh
//! random key, which is what lets the nonce be the per-key datagram sequence number.

use ring::rand::SystemRandom;
use std::time::{Duration, Instant};
use sttp_dataplane::Sealer;
use sttp_wire::aead::{self, SealingKey};

/// How long an announcement may stay unconfirmed before it is sent again.
pub(super) const ANNOUNCE_RETRY: Duration = Duration::from_secs(5);

/// A key announced to the subscriber.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Announcement {
    pub epoch: u32,
    pub key: [u8; aead::KEY_LEN],
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log key bytes.
        f.debug_struct("Announcement")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The key schedule of one subscription.
#[derive(Debug)]
pub(super) struct DataChannelKeys {
    rng: SystemRandom,
    /// Epoch in use by the worker (0 = none yet).
    active: u32,
    /// Announced, awaiting confirmation, with when it was last announced.
    pending: Option<(Announcement, Instant)>,
    /// Automatic rotation period.
    period: Option<Duration>,
    next_rotation: Option<Instant>,
}

impl DataChannelKeys {
    pub fn new(period: Option<Duration>) -> Self {
        Self {
            rng: SystemRandom::new(),
            active: 0,
            pending: None,
            period,
            next_rotation: None,
        }
    }

    /// True once a key is in use.
    pub fn is_active(&self) -> bool {
        self.active != 0
    }

    /// Announces the next epoch (or repeats the pending announcement). `Err` only if the
    /// system's random source fails.
    pub fn rotate(&mut self, now: Instant) -> Result<Announcement, String> {
        if let Some((a, at)) = &mut self.pending {
            *at = now;
            return Ok(a.clone());
        }
        let key = aead::generate_key(&self.rng)
            .map_err(|_| "the system random source failed; no data-channel key".to_string())?;
        let epoch = self.active.wrapping_add(1).max(1);
        let a = Announcement { epoch, key };
        self.pending = Some((a.clone(), now));
        Ok(a)
    }

    /// The subscriber confirmed `epoch`: returns the sealer the worker must switch to, if this
    /// confirms the pending announcement (a stale or unknown confirmation changes nothing).
    pub fn confirm(&mut self, epoch: u32, now: Instant) -> Option<Box<dyn Sealer>> {
        let (a, _) = self.pending.take_if(|(a, _)| a.epoch == epoch)?;
        self.active = a.epoch;
        self.next_rotation = self.period.map(|p| now + p);
        Some(Box::new(GcmSealer(SealingKey::new(a.epoch, &a.key))))
    }

    /// What is due at `now`: a repeat of an unconfirmed announcement, or a periodic rotation.
    pub fn due(&mut self, now: Instant) -> Option<Result<Announcement, String>> {
        if let Some((_, at)) = &self.pending {
            return (now.saturating_duration_since(*at) >= ANNOUNCE_RETRY)
                .then(|| self.rotate(now));
        }
        let next = self.next_rotation?;
        (now >= next).then(|| self.rotate(now))
    }

    /// When [`DataChannelKeys::due`] should next be asked.
    pub fn next_wakeup(&self) -> Option<Instant> {
        match &self.pending {
            Some((_, at)) => Some(*at + ANNOUNCE_RETRY),
            None => self.next_rotation,
        }
    }
}

/// The worker-side sealer of one epoch.
struct GcmSealer(SealingKey);

impl Sealer for GcmSealer {
    fn seal(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        self.0.seal_into(body, out).is_ok()
    }

    fn overhead(&self) -> usize {
        aead::OVERHEAD
    }

    fn describe(&self) -> String {
        format!("aes-256-gcm epoch {}", self.0.epoch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_used_only_after_its_confirmation_and_repeats_until_then() {
        let t0 = Instant::now();
        let mut keys = DataChannelKeys::new(Some(Duration::from_secs(60)));
        let first = keys.rotate(t0).unwrap();
        assert_eq!(first.epoch, 1);
        assert!(!keys.is_active());
        assert!(keys.due(t0 + Duration::from_secs(1)).is_none());
        let again = keys.due(t0 + ANNOUNCE_RETRY).unwrap().unwrap();
        assert_eq!(
            again, first,
            "an unconfirmed key is announced again, unchanged"
        );
        assert!(keys.confirm(7, t0).is_none(), "unknown epoch");
        let sealer = keys.confirm(1, t0).unwrap();
        assert_eq!(sealer.describe(), "aes-256-gcm epoch 1");
        assert!(keys.is_active());
        assert!(
            keys.confirm(1, t0).is_none(),
            "a repeated confirmation is stale"
        );
        // Periodic rotation brings epoch 2 with a fresh key.
        assert!(keys.due(t0 + Duration::from_secs(59)).is_none());
        let second = keys.due(t0 + Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(second.epoch, 2);
        assert_ne!(second.key, first.key);
    }
}
