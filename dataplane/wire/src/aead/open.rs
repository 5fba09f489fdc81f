//! Receiver side, one key: authenticating and decrypting a sealed datagram in place, and the
//! reasons a datagram is refused. [`super::keyring::Keyring`] chooses the key and keeps the
//! replay windows.

use super::format::{Header, HeaderError, HEADER_LEN, TAG_LEN};
use super::seal::KEY_LEN;
use core::fmt;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

/// Why a datagram was refused. Small and `Copy`: it is returned per datagram on the hot path,
/// and each reason has its own counter in [`super::keyring::KeyringStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenError {
    /// Shorter than header + tag.
    Short,
    /// The magic/version byte is not ours.
    BadVersion,
    /// No key announced for this epoch (never installed, or newer than any installed).
    UnknownEpoch,
    /// The epoch's key was superseded and its grace period is over (or it was dropped).
    Expired,
    /// The sequence number was already accepted under this epoch.
    Replayed,
    /// The sequence number is behind the replay window.
    TooOld,
    /// The tag did not verify: tampered, truncated, forged or sealed under another key.
    Authentication,
}

impl OpenError {
    /// A short stable name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::BadVersion => "bad_version",
            Self::UnknownEpoch => "unknown_epoch",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
            Self::TooOld => "too_old",
            Self::Authentication => "authentication",
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Short => "datagram shorter than the sealed header and tag",
            Self::BadVersion => "datagram magic/version byte is not 0xA5",
            Self::UnknownEpoch => "datagram sealed under a key epoch never announced",
            Self::Expired => "datagram sealed under a key epoch whose grace period is over",
            Self::Replayed => "datagram sequence number already received",
            Self::TooOld => "datagram sequence number behind the replay window",
            Self::Authentication => "datagram failed AES-256-GCM authentication",
        })
    }
}

impl std::error::Error for OpenError {}

impl From<HeaderError> for OpenError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::Short => Self::Short,
            HeaderError::BadVersion => Self::BadVersion,
        }
    }
}

/// An authenticated, decrypted datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The bare response body that was sealed (wire.md §8).
    pub plaintext: &'a [u8],
    /// Epoch of the key that sealed it.
    pub epoch: u32,
    /// Its sequence number within the epoch.
    pub sequence: u64,
}

/// One epoch's opening key.
pub(crate) struct OpeningKey {
    key: LessSafeKey,
    /// The raw key, kept only to recognise an idempotent re-announcement.
    raw: [u8; KEY_LEN],
}

impl OpeningKey {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        let unbound = match UnboundKey::new(&AES_256_GCM, key) {
            Ok(k) => k,
            Err(_) => unreachable_key_length(),
        };
        Self {
            key: LessSafeKey::new(unbound),
            raw: *key,
        }
    }

    pub(crate) fn same_key(&self, key: &[u8; KEY_LEN]) -> bool {
        // Not secret-dependent timing in any way that matters: both keys come from the trusted
        // command channel, never from a datagram.
        self.raw == *key
    }

    /// Authenticates and decrypts `datagram` in place; the plaintext is the returned sub-slice.
    /// The caller parsed `header` from the same datagram.
    pub(crate) fn open_in_place<'a>(
        &self,
        header: &Header,
        datagram: &'a mut [u8],
    ) -> Result<&'a mut [u8], OpenError> {
        let aad = header.encode();
        let sealed = datagram.get_mut(HEADER_LEN..).ok_or(OpenError::Short)?;
        if sealed.len() < TAG_LEN {
            return Err(OpenError::Short);
        }
        self.key
            .open_in_place(
                Nonce::assume_unique_for_key(header.nonce()),
                Aad::from(aad),
                sealed,
            )
            .map(|p| &mut *p)
            .map_err(|_| OpenError::Authentication)
    }
}

/// See `seal::unreachable_key_length`: a `[u8; 32]` is always a valid AES-256 key for ring.
#[cold]
#[allow(clippy::panic)]
fn unreachable_key_length() -> ! {
    panic!("ring rejected a 32-byte AES-256-GCM key")
}

/// Reads and checks the header of `datagram`.
pub(crate) fn parse_header(datagram: &[u8]) -> Result<Header, OpenError> {
    Ok(Header::parse(datagram)?)
}
