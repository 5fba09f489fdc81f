//! Sender side: seals bare response bodies into authenticated datagrams (layout in
//! [`super::format`]) and generates fresh epoch keys.

use super::format::{Header, HEADER_LEN, OVERHEAD};
use core::fmt;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::SecureRandom;

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// Why a datagram could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// Every sequence number of this epoch has been used; install a new epoch key. Reached only
    /// after 2^64 − 1 datagrams, but refusing beats wrapping into nonce reuse.
    SequenceExhausted,
    /// The plaintext is longer than AES-GCM can seal under one nonce (about 64 GiB).
    TooLong,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SequenceExhausted => f.write_str(
                "datagram sequence numbers of this key epoch are exhausted; rotate the key",
            ),
            Self::TooLong => f.write_str("plaintext too long for one AES-256-GCM seal"),
        }
    }
}

impl std::error::Error for SealError {}

/// The random source failed while generating key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGenError;

impl fmt::Display for KeyGenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system random number generator failed to produce key material")
    }
}

impl std::error::Error for KeyGenError {}

/// A fresh random 256-bit key for a new epoch. Each epoch must get its own key: the nonce is
/// only the sequence number, so keys are what keeps (key, nonce) pairs unique across epochs.
pub fn generate_key(rng: &dyn SecureRandom) -> Result<[u8; KEY_LEN], KeyGenError> {
    let mut key = [0u8; KEY_LEN];
    rng.fill(&mut key).map_err(|_| KeyGenError)?;
    Ok(key)
}

/// One epoch's sealing key and its sequence counter.
pub struct SealingKey {
    key: LessSafeKey,
    epoch: u32,
    /// Sequence of the next datagram.
    next: u64,
    /// Sequence of the last sealed datagram, to assert nonces never repeat.
    last: Option<u64>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SealingKey")
            .field("epoch", &self.epoch)
            .field("next_sequence", &self.next)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// A key for `epoch`, starting at sequence 0.
    pub fn new(epoch: u32, key: &[u8; KEY_LEN]) -> Self {
        Self::starting_at(epoch, key, 0)
    }

    /// A key for `epoch` whose next datagram gets sequence `next`. Only for resuming a key whose
    /// used sequences are all below `next` (and for tests): starting lower reuses nonces.
    pub fn starting_at(epoch: u32, key: &[u8; KEY_LEN], next: u64) -> Self {
        // A 32-byte slice always makes an AES-256 key; ring only fails on a wrong length.
        let key = match UnboundKey::new(&AES_256_GCM, key) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable_key_length(),
        };
        Self {
            key,
            epoch,
            next,
            last: None,
        }
    }

    /// The epoch this key seals under.
    pub const fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The sequence number the next datagram will carry.
    pub const fn sequence(&self) -> u64 {
        self.next
    }

    /// Appends one sealed datagram (header, ciphertext, tag; [`OVERHEAD`] bytes more than
    /// `plaintext`) to `out`, so it can go straight into a send batch buffer. On error `out` is
    /// left as it was.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        let sequence = self.next;
        if sequence == u64::MAX {
            return Err(SealError::SequenceExhausted);
        }
        debug_assert!(
            self.last.is_none_or(|last| sequence > last),
            "AES-GCM nonce reuse: sequence {sequence} after {:?} under epoch {}",
            self.last,
            self.epoch
        );
        let header = Header {
            epoch: self.epoch,
            sequence,
        };
        let start = out.len();
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(plaintext);
        let body_start = start + HEADER_LEN;
        let sealed = match out.get_mut(body_start..) {
            Some(in_out) => self
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(header.nonce()),
                    Aad::from(header.encode()),
                    in_out,
                )
                .map_err(|_| SealError::TooLong),
            None => Err(SealError::TooLong),
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                self.last = Some(sequence);
                self.next = sequence + 1;
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
}

/// `[u8; 32]` is exactly AES_256_GCM's key length, and a wrong length is ring's only reason to
/// refuse a key, so this cannot run; it exists so that no caller has to handle an impossible error.
#[cold]
#[allow(clippy::panic)]
fn unreachable_key_length() -> ! {
    panic!("ring rejected a 32-byte AES-256-GCM key")
}
