//! Subscriber side: the announced epoch keys (previous, current, next), each with its own replay
//! window, and the grace rule that retires superseded keys.
//!
//! Rotation (test-plan T9): the publisher announces epoch `n+1` on the command channel while
//! still sealing under `n`; the subscriber [`Keyring::install`]s it and confirms; the publisher
//! switches. Datagrams of both epochs may then arrive interleaved (reordering, batches in
//! flight). The first datagram that authenticates under `n+1` starts the grace period of every
//! older epoch: they are accepted for `grace_ms` more, then dropped, and their datagrams are
//! refused as [`OpenError::Expired`]. Epochs compare as plain `u32` (one rotation per second
//! lasts 136 years).
//!
//! Call order: `install` whenever a key announcement arrives, `open` per datagram; time is the
//! caller's monotonic clock in milliseconds, passed in (no clock is read here).

use super::format::Header;
use super::open::{parse_header, OpenError, Opened, OpeningKey};
use super::replay::{ReplayError, ReplayWindow};
use super::seal::KEY_LEN;
use core::fmt;

/// Default grace period of a superseded key, in milliseconds.
pub const DEFAULT_GRACE_MS: u64 = 5000;
/// Keys held at once: previous, current and next.
pub const SLOTS: usize = 3;

/// Rejection and success counters, one per [`OpenError`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyringStats {
    /// Datagrams authenticated and decrypted.
    pub opened: u64,
    /// [`OpenError::Short`].
    pub short: u64,
    /// [`OpenError::BadVersion`].
    pub bad_version: u64,
    /// [`OpenError::UnknownEpoch`].
    pub unknown_epoch: u64,
    /// [`OpenError::Expired`].
    pub expired: u64,
    /// [`OpenError::Replayed`].
    pub replayed: u64,
    /// [`OpenError::TooOld`].
    pub too_old: u64,
    /// [`OpenError::Authentication`].
    pub authentication: u64,
}

impl KeyringStats {
    /// The counter of one reason.
    pub const fn count(&self, reason: OpenError) -> u64 {
        match reason {
            OpenError::Short => self.short,
            OpenError::BadVersion => self.bad_version,
            OpenError::UnknownEpoch => self.unknown_epoch,
            OpenError::Expired => self.expired,
            OpenError::Replayed => self.replayed,
            OpenError::TooOld => self.too_old,
            OpenError::Authentication => self.authentication,
        }
    }

    /// Datagrams refused, all reasons together.
    pub const fn rejected(&self) -> u64 {
        self.short
            + self.bad_version
            + self.unknown_epoch
            + self.expired
            + self.replayed
            + self.too_old
            + self.authentication
    }

    fn record(&mut self, reason: OpenError) {
        let c = match reason {
            OpenError::Short => &mut self.short,
            OpenError::BadVersion => &mut self.bad_version,
            OpenError::UnknownEpoch => &mut self.unknown_epoch,
            OpenError::Expired => &mut self.expired,
            OpenError::Replayed => &mut self.replayed,
            OpenError::TooOld => &mut self.too_old,
            OpenError::Authentication => &mut self.authentication,
        };
        *c += 1;
    }
}

/// Why a key announcement was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallError {
    /// The epoch is older than one already in use (or than every key held): installing it
    /// could only re-open a retired key.
    Superseded {
        /// The announced epoch.
        epoch: u32,
        /// The newest epoch held or in use.
        newest: u32,
    },
    /// The epoch is already installed with a different key. An epoch never changes its key
    /// (the nonce is only the sequence number), so this is a publisher bug or an attack.
    Conflict {
        /// The announced epoch.
        epoch: u32,
    },
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Superseded { epoch, newest } => write!(
                f,
                "key epoch {epoch} announced after epoch {newest} is already in use"
            ),
            Self::Conflict { epoch } => {
                write!(f, "key epoch {epoch} announced again with a different key")
            }
        }
    }
}

impl std::error::Error for InstallError {}

struct Slot {
    epoch: u32,
    key: OpeningKey,
    window: ReplayWindow,
    /// True once a datagram authenticated under this epoch.
    authenticated: bool,
    /// When a newer epoch first authenticated; the grace period runs from here.
    superseded_at: Option<u64>,
}

/// The keys and their windows, without the scratch buffer (so both can be borrowed at once).
struct Keys {
    slots: [Option<Slot>; SLOTS],
    grace_ms: u64,
    /// Newest epoch that has authenticated a datagram.
    newest_authenticated: Option<u32>,
}

/// The subscriber's epoch keys. See the module docs for the rotation and grace rules.
pub struct Keyring {
    keys: Keys,
    stats: KeyringStats,
    /// Reused decryption buffer for [`Keyring::open`]: no allocation per datagram once warm.
    buf: Vec<u8>,
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("epochs", &self.epochs())
            .field("grace_ms", &self.keys.grace_ms)
            .field("newest_authenticated", &self.keys.newest_authenticated)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// An empty keyring with the default grace period.
    pub fn new() -> Self {
        Self::with_grace(DEFAULT_GRACE_MS)
    }

    /// An empty keyring whose superseded keys live `grace_ms` after the newer epoch's first
    /// authenticated datagram.
    pub fn with_grace(grace_ms: u64) -> Self {
        Self {
            keys: Keys {
                slots: [None, None, None],
                grace_ms,
                newest_authenticated: None,
            },
            stats: KeyringStats::default(),
            buf: Vec::new(),
        }
    }

    /// Installs the key the publisher announced for `epoch`. Re-announcing the same key is a
    /// no-op. When all [`SLOTS`] are taken, the oldest epoch makes room.
    pub fn install(
        &mut self,
        epoch: u32,
        key: &[u8; KEY_LEN],
        now_ms: u64,
    ) -> Result<(), InstallError> {
        self.keys.install(epoch, key, now_ms)
    }

    /// Authenticates and decrypts one datagram, copying it into an internal buffer first (the
    /// buffer is reused, so no allocation per datagram once it has grown to the largest size).
    pub fn open(&mut self, datagram: &[u8], now_ms: u64) -> Result<Opened<'_>, OpenError> {
        let Self { keys, stats, buf } = self;
        buf.clear();
        buf.extend_from_slice(datagram);
        let result = keys.open(buf, now_ms);
        match &result {
            Ok(_) => stats.opened += 1,
            Err(e) => stats.record(*e),
        }
        result
    }

    /// Like [`Keyring::open`] but decrypts inside `datagram` (the receive buffer), without a
    /// copy. On error the buffer's contents are unspecified.
    pub fn open_in_place<'a>(
        &mut self,
        datagram: &'a mut [u8],
        now_ms: u64,
    ) -> Result<Opened<'a>, OpenError> {
        let result = self.keys.open(datagram, now_ms);
        match &result {
            Ok(_) => self.stats.opened += 1,
            Err(e) => self.stats.record(*e),
        }
        result
    }

    /// Drops keys whose grace period is over. `open` and `install` do this themselves.
    pub fn purge(&mut self, now_ms: u64) {
        self.keys.purge(now_ms);
    }

    /// The installed epochs, ascending.
    pub fn epochs(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.keys.slots.iter().flatten().map(|s| s.epoch).collect();
        v.sort_unstable();
        v
    }

    /// The newest epoch that has authenticated a datagram.
    pub const fn newest_authenticated(&self) -> Option<u32> {
        self.keys.newest_authenticated
    }

    /// The grace period in milliseconds.
    pub const fn grace_ms(&self) -> u64 {
        self.keys.grace_ms
    }

    /// Counters of opened and refused datagrams.
    pub const fn stats(&self) -> &KeyringStats {
        &self.stats
    }
}

impl Keys {
    fn find(&mut self, epoch: u32) -> Option<&mut Slot> {
        self.slots.iter_mut().flatten().find(|s| s.epoch == epoch)
    }

    fn purge(&mut self, now_ms: u64) {
        let grace = self.grace_ms;
        for entry in &mut self.slots {
            if entry.as_ref().is_some_and(|s| {
                s.superseded_at
                    .is_some_and(|t| now_ms.saturating_sub(t) >= grace)
            }) {
                *entry = None;
            }
        }
    }

    fn install(
        &mut self,
        epoch: u32,
        key: &[u8; KEY_LEN],
        now_ms: u64,
    ) -> Result<(), InstallError> {
        if let Some(slot) = self.find(epoch) {
            return if slot.key.same_key(key) {
                Ok(())
            } else {
                Err(InstallError::Conflict { epoch })
            };
        }
        if let Some(newest) = self.newest_authenticated.filter(|&n| epoch < n) {
            return Err(InstallError::Superseded { epoch, newest });
        }
        self.purge(now_ms);
        let free = self.slots.iter().position(Option::is_none);
        let at = match free {
            Some(i) => i,
            None => {
                let oldest = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.as_ref().map(|s| (s.epoch, i)))
                    .min();
                let newest = self.slots.iter().flatten().map(|s| s.epoch).max();
                match (oldest, newest) {
                    (Some((oldest_epoch, i)), _) if epoch > oldest_epoch => i,
                    (_, Some(newest)) => return Err(InstallError::Superseded { epoch, newest }),
                    // Unreachable: no free slot means every slot holds a key.
                    (_, None) => 0,
                }
            }
        };
        if let Some(entry) = self.slots.get_mut(at) {
            *entry = Some(Slot {
                epoch,
                key: OpeningKey::new(key),
                window: ReplayWindow::new(),
                authenticated: false,
                superseded_at: None,
            });
        }
        Ok(())
    }

    fn open<'a>(&mut self, datagram: &'a mut [u8], now_ms: u64) -> Result<Opened<'a>, OpenError> {
        let header: Header = parse_header(datagram)?;
        self.purge(now_ms);
        let newest = self.newest_authenticated;
        let Some(slot) = self.find(header.epoch) else {
            return Err(match newest {
                Some(n) if header.epoch < n => OpenError::Expired,
                _ => OpenError::UnknownEpoch,
            });
        };
        slot.window.check(header.sequence).map_err(|e| match e {
            ReplayError::Replayed => OpenError::Replayed,
            ReplayError::TooOld => OpenError::TooOld,
        })?;
        let plaintext = slot.key.open_in_place(&header, datagram)?;
        slot.window.accept(header.sequence);
        if !slot.authenticated {
            slot.authenticated = true;
            self.first_authenticated(header.epoch, now_ms);
        }
        Ok(Opened {
            plaintext,
            epoch: header.epoch,
            sequence: header.sequence,
        })
    }

    /// `epoch` authenticated its first datagram: every older epoch's grace period starts now.
    fn first_authenticated(&mut self, epoch: u32, now_ms: u64) {
        if self.newest_authenticated.is_none_or(|n| epoch > n) {
            self.newest_authenticated = Some(epoch);
        }
        for slot in self.slots.iter_mut().flatten() {
            if slot.epoch < epoch && slot.superseded_at.is_none() {
                slot.superseded_at = Some(now_ms);
            }
        }
    }
}
