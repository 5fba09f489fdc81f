//! The gsfapi-compatible AES-256-CBC data-channel cipher (wire.md §8 "Encryption (gsfapi
//! only)"), for interoperating with .NET peers that negotiated `UpdateCipherKeys`.
//!
//! **Confidentiality only.** There is no MAC and the IV is fixed per key, so an attacker can
//! replay, reorder, truncate and bit-flip packets undetected, and equal plaintext prefixes give
//! equal ciphertext. This mode does not meet CIP-012 integrity; between our own peers use
//! [`crate::aead`] instead.
//!
//! What is encrypted (wire.md §8): in a DataPacket (0x82) everything after the flags byte; in a
//! BufferBlock (0x88) everything after the `u32` sequence and the flags byte. Flag 0x04 in that
//! clear flags byte names the key set: set = odd (1), clear = even (0). The cipher is
//! AES-256-CBC with PKCS7 padding (.NET `Aes` defaults), and the response's `i32` payload length
//! is updated to the encrypted size. Key sets are carried to the subscriber by the
//! UpdateCipherKeys 0x85 payload, whose codec is `sttp_proto::payloads::CipherKeys`.

use crate::aead::KeyGenError;
use crate::frame::{RESPONSE_HEADER_LEN, RESPONSE_LENGTH};
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use core::fmt;
use ring::rand::SecureRandom;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// AES block size: the ciphertext is a non-zero multiple of it.
pub const BLOCK_LEN: usize = 16;
/// Flag bit (DataPacket flags and BufferBlock flags alike): encrypted with the odd key set.
pub const KEY_INDEX_FLAG: u8 = 0x04;
/// Response code of DataPacket.
pub const DATA_PACKET: u8 = 0x82;
/// Response code of BufferBlock.
pub const BUFFER_BLOCK: u8 = 0x88;

/// One AES-256 key and its CBC IV.
#[derive(Clone, PartialEq, Eq)]
pub struct CipherKeySet {
    /// AES-256 key.
    pub key: [u8; 32],
    /// CBC initialisation vector (reused for every packet under this key, as gsfapi does).
    pub iv: [u8; 16],
}

impl fmt::Debug for CipherKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CipherKeySet { .. }")
    }
}

impl CipherKeySet {
    /// A fresh random key and IV.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, KeyGenError> {
        let mut set = Self {
            key: [0; 32],
            iv: [0; 16],
        };
        rng.fill(&mut set.key).map_err(|_| KeyGenError)?;
        rng.fill(&mut set.iv).map_err(|_| KeyGenError)?;
        Ok(set)
    }
}

/// The even (0) and odd (1) key sets and the publisher's current index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyKeys {
    /// Key set 0.
    pub even: CipherKeySet,
    /// Key set 1.
    pub odd: CipherKeySet,
    /// The set the publisher encrypts with now (0 or 1).
    pub index: u8,
}

impl LegacyKeys {
    /// Both sets fresh, index 0 (gsfapi's first UpdateCipherKeys).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, KeyGenError> {
        Ok(Self {
            even: CipherKeySet::generate(rng)?,
            odd: CipherKeySet::generate(rng)?,
            index: 0,
        })
    }

    /// gsfapi rotation (wire.md §8): regenerate the set at the *current* index, then flip the
    /// index. On a random-source failure nothing changes.
    pub fn rotate(&mut self, rng: &dyn SecureRandom) -> Result<(), KeyGenError> {
        let fresh = CipherKeySet::generate(rng)?;
        if self.index & 1 == 0 {
            self.even = fresh;
        } else {
            self.odd = fresh;
        }
        self.index ^= 1;
        Ok(())
    }

    /// The set selected by `index` (only its low bit counts).
    pub fn set(&self, index: u8) -> &CipherKeySet {
        if index & 1 == 0 {
            &self.even
        } else {
            &self.odd
        }
    }

    /// The set the publisher encrypts with now.
    pub fn current(&self) -> &CipherKeySet {
        self.set(self.index)
    }
}

/// Why a response could not be encrypted or decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyError {
    /// The body ends before the response header and the clear-text fields.
    Short {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Not the response code the function handles.
    WrongCode {
        /// The code expected (0x82 or 0x88).
        expected: u8,
        /// The code found.
        found: u8,
    },
    /// The `i32` payload length disagrees with the bytes present.
    LengthMismatch {
        /// The declared payload length.
        declared: i32,
        /// The payload bytes present.
        actual: usize,
    },
    /// The ciphertext is empty or not a multiple of 16 bytes.
    CiphertextLength(usize),
    /// The PKCS7 padding after decryption is invalid (wrong key, or corrupted data).
    BadPadding,
    /// The encrypted payload would not fit the `i32` length field.
    TooLong(usize),
}

impl fmt::Display for LegacyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short { need, have } => {
                write!(f, "response too short for AES-CBC: need {need} bytes, have {have}")
            }
            Self::WrongCode { expected, found } => write!(
                f,
                "response code 0x{found:02X} is not 0x{expected:02X}; only DataPacket and BufferBlock are encrypted"
            ),
            Self::LengthMismatch { declared, actual } => write!(
                f,
                "response declares a {declared}-byte payload but carries {actual} bytes"
            ),
            Self::CiphertextLength(n) => write!(
                f,
                "AES-CBC ciphertext of {n} bytes is not a non-zero multiple of 16"
            ),
            Self::BadPadding => {
                f.write_str("AES-CBC PKCS7 padding invalid: wrong key set or corrupted packet")
            }
            Self::TooLong(n) => write!(f, "encrypted payload of {n} bytes exceeds the i32 length"),
        }
    }
}

impl std::error::Error for LegacyError {}

/// Which response, and where its clear-text part ends.
#[derive(Clone, Copy)]
struct Kind {
    code: u8,
    /// Offset of the flags byte inside the payload.
    flags_at: usize,
}

const DATA_PACKET_KIND: Kind = Kind {
    code: DATA_PACKET,
    flags_at: 0,
};
const BUFFER_BLOCK_KIND: Kind = Kind {
    code: BUFFER_BLOCK,
    flags_at: 4,
};

impl Kind {
    /// Bytes from the start of the body that stay clear text.
    const fn clear_len(self) -> usize {
        RESPONSE_HEADER_LEN + self.flags_at + 1
    }
}

/// Encrypts a whole bare DataPacket response body (`82 cmd i32 len flags …`) with the current
/// key set: flag 0x04 names the set, the rest of the payload becomes ciphertext.
pub fn encrypt_data_packet(body: &[u8], keys: &LegacyKeys) -> Result<Vec<u8>, LegacyError> {
    encrypt(DATA_PACKET_KIND, body, keys)
}

/// Decrypts a DataPacket body encrypted by a gsfapi-style publisher, choosing the key set from
/// flag 0x04, stripping PKCS7 and clearing the flag, so the result parses as a plain DataPacket.
pub fn decrypt_data_packet(body: &[u8], keys: &LegacyKeys) -> Result<Vec<u8>, LegacyError> {
    decrypt(DATA_PACKET_KIND, body, keys)
}

/// Encrypts a whole bare BufferBlock response body (`88 cmd i32 len seq flags …`): sequence and
/// flags stay clear, signal index and payload become ciphertext.
pub fn encrypt_buffer_block(body: &[u8], keys: &LegacyKeys) -> Result<Vec<u8>, LegacyError> {
    encrypt(BUFFER_BLOCK_KIND, body, keys)
}

/// The inverse of [`encrypt_buffer_block`].
pub fn decrypt_buffer_block(body: &[u8], keys: &LegacyKeys) -> Result<Vec<u8>, LegacyError> {
    decrypt(BUFFER_BLOCK_KIND, body, keys)
}

/// Checks code and declared length; returns the clear prefix and the rest.
fn split(kind: Kind, body: &[u8]) -> Result<(&[u8], &[u8]), LegacyError> {
    let need = kind.clear_len();
    if body.len() < need {
        return Err(LegacyError::Short {
            need,
            have: body.len(),
        });
    }
    let (clear, rest) = body.split_at(need);
    let code = clear.first().copied().unwrap_or_default();
    if code != kind.code {
        return Err(LegacyError::WrongCode {
            expected: kind.code,
            found: code,
        });
    }
    let mut len = [0u8; 4];
    if let Some(field) = clear.get(RESPONSE_LENGTH..RESPONSE_LENGTH + 4) {
        len.copy_from_slice(field);
    }
    let declared = i32::from_be_bytes(len);
    let actual = body.len() - RESPONSE_HEADER_LEN;
    if usize::try_from(declared).ok() != Some(actual) {
        return Err(LegacyError::LengthMismatch { declared, actual });
    }
    Ok((clear, rest))
}

/// Copies the clear prefix with the key-index flag set to `odd` and the length set for a
/// payload of `payload_len` bytes.
fn write_clear(
    kind: Kind,
    clear: &[u8],
    odd: bool,
    payload_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), LegacyError> {
    let len = i32::try_from(payload_len).map_err(|_| LegacyError::TooLong(payload_len))?;
    let start = out.len();
    out.extend_from_slice(clear);
    if let Some(field) = out.get_mut(start + RESPONSE_LENGTH..start + RESPONSE_LENGTH + 4) {
        field.copy_from_slice(&len.to_be_bytes());
    }
    if let Some(flags) = out.get_mut(start + RESPONSE_HEADER_LEN + kind.flags_at) {
        if odd {
            *flags |= KEY_INDEX_FLAG;
        } else {
            *flags &= !KEY_INDEX_FLAG;
        }
    }
    Ok(())
}

fn encrypt(kind: Kind, body: &[u8], keys: &LegacyKeys) -> Result<Vec<u8>, LegacyError> {
    let (clear, plain) = split(kind, body)?;
    let padded = (plain.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    let payload_len = kind.flags_at + 1 + padded;
    let mut out = Vec::with_capacity(RESPONSE_HEADER_LEN + payload_len);
    let odd = keys.index & 1 == 1;
    write_clear(kind, clear, odd, payload_len, &mut out)?;
    let start = out.len();
    out.resize(start + padded, 0);
    let set = keys.current();
    let cipher = Encryptor::new(&set.key.into(), &set.iv.into());
    let written = match out.get_mut(start..) {
        Some(dst) => cipher
            .encrypt_padded_b2b_mut::<Pkcs7>(plain, dst)
            .map(<[u8]>::len)
            .map_err(|_| LegacyError::CiphertextLength(padded))?,
        None => return Err(LegacyError::CiphertextLength(padded)),
    };
    out.truncate(start + written);
    Ok(out)
}

fn decrypt(kind: Kind, body: &[u8], keys: &LegacyKeys) -> Result<Vec<u8>, LegacyError> {
    let (clear, cipher_text) = split(kind, body)?;
    if cipher_text.is_empty() || cipher_text.len() % BLOCK_LEN != 0 {
        return Err(LegacyError::CiphertextLength(cipher_text.len()));
    }
    let flags = clear
        .get(RESPONSE_HEADER_LEN + kind.flags_at)
        .copied()
        .unwrap_or_default();
    let set = keys.set(u8::from(flags & KEY_INDEX_FLAG != 0));
    let mut plain = vec![0u8; cipher_text.len()];
    let cipher = Decryptor::new(&set.key.into(), &set.iv.into());
    let plain_len = cipher
        .decrypt_padded_b2b_mut::<Pkcs7>(cipher_text, &mut plain)
        .map(<[u8]>::len)
        .map_err(|_| LegacyError::BadPadding)?;
    plain.truncate(plain_len);
    let mut out = Vec::with_capacity(clear.len() + plain_len);
    write_clear(kind, clear, false, kind.flags_at + 1 + plain_len, &mut out)?;
    out.extend_from_slice(&plain);
    Ok(out)
}
