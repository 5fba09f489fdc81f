//! Payload codecs of the small responses both sides need: DataStartTime 0x86, UpdateBaseTimes
//! 0x84 (wire.md §6), Notify 0x89, BufferBlock 0x88 (wire.md §9) and UpdateCipherKeys 0x85
//! (wire.md §8). Every decoder reads through the panic-free cursor and checks lengths before
//! allocating.

use crate::encoding::StringEncoding;
use crate::error::ProtoError;
use sttp_wire::cursor::Reader;

/// DataStartTime 0x86: `i64` ticks of the first measurement.
pub fn decode_data_start_time(payload: &[u8]) -> Result<i64, ProtoError> {
    Ok(Reader::new(payload).i64("data start time")?)
}

/// Encodes a DataStartTime 0x86 payload.
pub fn encode_data_start_time(ticks: i64) -> [u8; 8] {
    ticks.to_be_bytes()
}

/// UpdateBaseTimes 0x84 (wire.md §6): the codec lives beside the compact format that uses it.
pub use sttp_wire::compact::BaseTimes;

/// Notify 0x89 (wire.md §9): `i32 hash` + message; the subscriber confirms with
/// `ConfirmNotification(hash)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The hash to echo in ConfirmNotification 0x07.
    pub hash: i32,
    /// The message text.
    pub message: String,
}

impl Notification {
    /// Parses the payload; the message is decoded leniently (display text).
    pub fn decode(payload: &[u8], enc: StringEncoding) -> Result<Self, ProtoError> {
        let mut r = Reader::new(payload);
        let hash = r.i32("notification hash")?;
        Ok(Self {
            hash,
            message: enc.decode_lossy(r.rest()),
        })
    }

    /// The payload.
    pub fn encode(&self, enc: StringEncoding) -> Vec<u8> {
        let mut out = self.hash.to_be_bytes().to_vec();
        out.extend_from_slice(&enc.encode(&self.message));
        out
    }
}

/// BufferBlock flags (wire.md §9, IEEE 2664-2024 layout).
pub mod buffer_block_flags {
    /// The subscriber must answer ConfirmBufferBlock with the sequence number.
    pub const REQUIRE_CONFIRMATION: u8 = 0x01;
    /// Encrypted with the odd key set (else even).
    pub const KEY_INDEX: u8 = 0x04;
    /// The payload is gzip.
    pub const COMPRESSED: u8 = 0x08;
    /// The signal index refers to cache slot 1 (else 0).
    pub const CACHE_INDEX: u8 = 0x10;
}

/// Offset of the clear-text/ciphertext boundary in a BufferBlock payload: seq + flags.
pub const BUFFER_BLOCK_CLEAR_LEN: usize = 5;

/// BufferBlock 0x88 (wire.md §9): `u32 sequence, u8 flags, i32 signalIndex, payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferBlock<'a> {
    /// Per-connection sequence number, from 0.
    pub sequence: u32,
    /// See [`buffer_block_flags`].
    pub flags: u8,
    /// Runtime ID in the cache selected by [`buffer_block_flags::CACHE_INDEX`].
    pub signal_index: i32,
    /// Opaque payload (gzip when [`buffer_block_flags::COMPRESSED`]).
    pub payload: &'a [u8],
}

impl<'a> BufferBlock<'a> {
    /// Parses a clear-text block. For an encrypted one (flag KEY_INDEX after UpdateCipherKeys)
    /// use [`split_buffer_block`] first and decrypt the rest.
    pub fn decode(payload: &'a [u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(payload);
        let sequence = r.u32("buffer block sequence number")?;
        let flags = r.u8("buffer block flags")?;
        let signal_index = r.i32("buffer block signal index")?;
        Ok(Self {
            sequence,
            flags,
            signal_index,
            payload: r.rest(),
        })
    }

    /// True when the publisher asked for ConfirmBufferBlock.
    pub fn requires_confirmation(&self) -> bool {
        self.flags & buffer_block_flags::REQUIRE_CONFIRMATION != 0
    }

    /// Appends the payload encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.push(self.flags);
        out.extend_from_slice(&self.signal_index.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// Splits a BufferBlock payload into its clear-text `(sequence, flags)` and the rest, which is
/// ciphertext when the block is encrypted (wire.md §8).
pub fn split_buffer_block(payload: &[u8]) -> Result<(u32, u8, &[u8]), ProtoError> {
    let mut r = Reader::new(payload);
    let seq = r.u32("buffer block sequence number")?;
    let flags = r.u8("buffer block flags")?;
    Ok((seq, flags, r.rest()))
}

/// One AES key and IV from UpdateCipherKeys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyIv {
    /// Cipher key (32 bytes for AES-256).
    pub key: Vec<u8>,
    /// Initialisation vector (16 bytes).
    pub iv: Vec<u8>,
}

/// UpdateCipherKeys 0x85 (wire.md §8): `u8 cipherIndex`, then `i32 len` + bytes for even key,
/// even IV, odd key, odd IV.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CipherKeys {
    /// The publisher's current index; subscribers use each packet's flag instead.
    pub cipher_index: u8,
    /// Even (index 0) and odd (index 1) sets.
    pub sets: [KeyIv; 2],
}

/// Bound on one key or IV: AES needs at most 32; anything near this is hostile.
pub const MAX_CIPHER_FIELD: usize = 256;

impl CipherKeys {
    /// Parses the payload; each field is bounded by [`MAX_CIPHER_FIELD`].
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(payload);
        let cipher_index = r.u8("cipher index")?;
        let mut field = |what| r.i32_prefixed(what, MAX_CIPHER_FIELD).map(<[u8]>::to_vec);
        let even = KeyIv {
            key: field("even cipher key")?,
            iv: field("even cipher IV")?,
        };
        let odd = KeyIv {
            key: field("odd cipher key")?,
            iv: field("odd cipher IV")?,
        };
        Ok(Self {
            cipher_index,
            sets: [even, odd],
        })
    }

    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.cipher_index];
        for set in &self.sets {
            crate::command::put_string(&mut out, &set.key);
            crate::command::put_string(&mut out, &set.iv);
        }
        out
    }

    /// The announcement of the data-plane key sets (`sttp_wire::legacy_cbc`).
    pub fn from_legacy(keys: &sttp_wire::legacy_cbc::LegacyKeys) -> Self {
        let set = |s: &sttp_wire::legacy_cbc::CipherKeySet| KeyIv {
            key: s.key.to_vec(),
            iv: s.iv.to_vec(),
        };
        Self {
            cipher_index: keys.index,
            sets: [set(&keys.even), set(&keys.odd)],
        }
    }

    /// The data-plane key sets; every key must be 32 bytes and every IV 16 (AES-256-CBC).
    pub fn to_legacy(&self) -> Result<sttp_wire::legacy_cbc::LegacyKeys, ProtoError> {
        let set = |s: &KeyIv, key_what, iv_what| {
            Ok::<_, ProtoError>(sttp_wire::legacy_cbc::CipherKeySet {
                key: s
                    .key
                    .as_slice()
                    .try_into()
                    .map_err(|_| sttp_wire::cursor::DecodeError::invalid(key_what, 0))?,
                iv: s
                    .iv
                    .as_slice()
                    .try_into()
                    .map_err(|_| sttp_wire::cursor::DecodeError::invalid(iv_what, 0))?,
            })
        };
        let [even, odd] = &self.sets;
        Ok(sttp_wire::legacy_cbc::LegacyKeys {
            even: set(
                even,
                "even cipher key length (need 32)",
                "even cipher IV length (need 16)",
            )?,
            odd: set(
                odd,
                "odd cipher key length (need 32)",
                "odd cipher IV length (need 16)",
            )?,
            index: self.cipher_index & 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_and_start_time() {
        let n = Notification {
            hash: -5,
            message: "config changed".into(),
        };
        assert_eq!(
            Notification::decode(&n.encode(StringEncoding::Utf8), StringEncoding::Utf8).unwrap(),
            n
        );
        assert!(Notification::decode(&[1, 2], StringEncoding::Utf8).is_err());
        assert_eq!(
            decode_data_start_time(&encode_data_start_time(-7)).unwrap(),
            -7
        );
        assert!(decode_data_start_time(&[0; 7]).is_err());
    }

    #[test]
    fn buffer_block() {
        let b = BufferBlock {
            sequence: 3,
            flags: buffer_block_flags::REQUIRE_CONFIRMATION,
            signal_index: 9,
            payload: b"xyz",
        };
        let mut p = Vec::new();
        b.encode(&mut p);
        assert_eq!(p, [0, 0, 0, 3, 1, 0, 0, 0, 9, b'x', b'y', b'z']);
        let d = BufferBlock::decode(&p).unwrap();
        assert_eq!(d, b);
        assert!(d.requires_confirmation());
        assert_eq!(split_buffer_block(&p).unwrap(), (3, 1, &p[5..]));
        assert!(BufferBlock::decode(&p[..8]).is_err());
    }

    #[test]
    fn cipher_keys() {
        let k = CipherKeys {
            cipher_index: 1,
            sets: [
                KeyIv {
                    key: vec![1; 32],
                    iv: vec![2; 16],
                },
                KeyIv {
                    key: vec![3; 32],
                    iv: vec![4; 16],
                },
            ],
        };
        let p = k.encode();
        assert_eq!(p.len(), 1 + 4 * 4 + 96);
        assert_eq!(CipherKeys::decode(&p).unwrap(), k);
        assert!(CipherKeys::decode(&p[..p.len() - 1]).is_err());
        let mut huge = vec![0u8, 0x7F, 0xFF, 0xFF, 0xFF];
        huge.extend_from_slice(&[0; 8]);
        assert!(CipherKeys::decode(&huge).is_err());
    }
}
