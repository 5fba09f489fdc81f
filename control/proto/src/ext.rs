//! Our protocol extension, spoken only between our own peers and invisible to stock ones
//! (wire.md §11 "safe extension points"):
//!
//! - **Announcement.** The subscriber sets [`EXTENSION_MODE_BITS`] in the operational-modes
//!   extension byte (wire.md §2, §11 item 3; stock publishers ignore it) and adds the braced key
//!   `sttpExt={udpCipher=aes-256-gcm}` to Subscribe (§11 item 1; stock publishers ignore unknown
//!   keys).
//! - **Messages.** Carried in user command 0xD5 (subscriber → publisher) and user response 0xE5
//!   (publisher → subscriber, commandCode 0xD5), the only codes every stock peer tolerates
//!   (§11 item 2, §1.1/§1.2). Other applications may use the same codes, so every payload starts
//!   with the magic `STTPRS` and a version byte; anything else in those codes is "not ours".
//!
//! Payload layout: `"STTPRS"`, `u8 version = 1`, `u8 type`, body (big-endian):
//!
//! | type | message | direction | body |
//! |---|---|---|---|
//! | 1 | [`ExtMessage::KeyAnnounce`] | publisher → subscriber | `u32 epoch`, 32-byte AES-256-GCM key |
//! | 2 | [`ExtMessage::KeyConfirm`] | subscriber → publisher | `u32 epoch` |
//! | 3 | [`ExtMessage::Capabilities`] | either | `u8 count`, `count × u8` cipher id |
//!
//! **Key confidentiality:** a KeyAnnounce carries the UDP data key in clear inside the command
//! channel. Over TLS that is fine; over plain TCP the key is exactly as visible as the data it
//! protects would have been, and the AEAD then only protects against off-path injection and
//! replay. Deployments that need confidentiality must run the command channel over TLS.

use crate::connstr::ConnectionString;
use sttp_wire::cursor::{DecodeError, Reader};
use sttp_wire::frame;

/// Operational-modes bits announcing this extension: extension byte 0xA5 inside
/// ImplementationSpecificExtensionMask 0x00FF0000 (wire.md §2).
pub const EXTENSION_MODE_BITS: u32 = 0x00A5_0000;
/// The extension byte itself, as `OperationalModes::extension` returns it.
pub const EXTENSION_BYTE: u8 = 0xA5;
/// User command carrying subscriber → publisher messages (UserCommand05).
pub const USER_COMMAND: u8 = 0xD5;
/// User response carrying publisher → subscriber messages (UserResponse05).
pub const USER_RESPONSE: u8 = 0xE5;
/// commandCode byte of our user responses: the user command they belong to (the Python
/// subscriber disconnects on a commandCode outside 0x00–0x0D / 0xD0–0xDF, wire.md §1.2).
pub const RESPONSE_COMMAND_CODE: u8 = USER_COMMAND;
/// First bytes of every extension payload.
pub const MAGIC: [u8; 6] = *b"STTPRS";
/// Message format version.
pub const VERSION: u8 = 1;
/// Connection-string key (in Subscribe) holding the braced extension settings.
pub const CONNECTION_STRING_KEY: &str = "sttpExt";
/// Key inside [`CONNECTION_STRING_KEY`] naming the requested UDP cipher.
pub const UDP_CIPHER_KEY: &str = "udpCipher";

/// Message type bytes.
pub mod msg_type {
    /// [`super::ExtMessage::KeyAnnounce`].
    pub const KEY_ANNOUNCE: u8 = 1;
    /// [`super::ExtMessage::KeyConfirm`].
    pub const KEY_CONFIRM: u8 = 2;
    /// [`super::ExtMessage::Capabilities`].
    pub const CAPABILITIES: u8 = 3;
}

/// Bytes of a data-channel key.
pub const KEY_LEN: usize = 32;

/// UDP data-channel ciphers this extension can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdpCipher {
    /// AES-256-GCM with epoch keys and a replay window (`sttp_wire::aead`).
    Aes256Gcm,
}

impl UdpCipher {
    /// Every cipher, in preference order.
    pub const ALL: [Self; 1] = [Self::Aes256Gcm];

    /// Identifier in [`ExtMessage::Capabilities`].
    pub const fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
        }
    }

    /// The cipher with identifier `id`.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// Name in the connection string.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// The cipher called `name` (ASCII case-insensitive, surrounding spaces ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One extension message.
#[derive(Clone, PartialEq, Eq)]
pub enum ExtMessage {
    /// Publisher → subscriber: install this key for `epoch` (it may already be in use soon).
    KeyAnnounce {
        /// Key epoch, as carried in every sealed datagram header.
        epoch: u32,
        /// AES-256-GCM key.
        key: [u8; KEY_LEN],
    },
    /// Subscriber → publisher: epoch `epoch` is installed; the publisher may switch to it.
    KeyConfirm {
        /// The confirmed epoch.
        epoch: u32,
    },
    /// Either direction: the UDP ciphers the sender supports. Unknown identifiers from a newer
    /// peer are skipped when decoding.
    Capabilities {
        /// Supported ciphers, in the sender's preference order.
        udp_ciphers: Vec<UdpCipher>,
    },
}

impl core::fmt::Debug for ExtMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            // Never print key material.
            Self::KeyAnnounce { epoch, .. } => f
                .debug_struct("KeyAnnounce")
                .field("epoch", epoch)
                .finish_non_exhaustive(),
            Self::KeyConfirm { epoch } => {
                f.debug_struct("KeyConfirm").field("epoch", epoch).finish()
            }
            Self::Capabilities { udp_ciphers } => f
                .debug_struct("Capabilities")
                .field("udp_ciphers", udp_ciphers)
                .finish(),
        }
    }
}

/// Why a payload that carries our magic could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtError {
    /// A field is cut short.
    #[error("malformed sttpExt message: {0}")]
    Decode(#[from] DecodeError),
    /// A message format version this side does not speak.
    #[error("sttpExt message version {0} not supported (this side speaks version 1)")]
    UnsupportedVersion(u8),
    /// A message type this side does not know.
    #[error("unknown sttpExt message type {0}")]
    UnknownType(u8),
    /// A message arrived in the code of the wrong direction (e.g. a key announcement from the
    /// subscriber).
    #[error("sttpExt {message} is not valid in code 0x{code:02X}")]
    WrongDirection {
        /// The message type's name.
        message: &'static str,
        /// The code it arrived in.
        code: u8,
    },
    /// Bytes follow the message.
    #[error("{count} unexpected bytes after the sttpExt message at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        count: usize,
    },
}

impl ExtMessage {
    /// The message type byte.
    pub const fn type_byte(&self) -> u8 {
        match self {
            Self::KeyAnnounce { .. } => msg_type::KEY_ANNOUNCE,
            Self::KeyConfirm { .. } => msg_type::KEY_CONFIRM,
            Self::Capabilities { .. } => msg_type::CAPABILITIES,
        }
    }

    /// A short name for logs and errors.
    pub const fn name(&self) -> &'static str {
        type_name(self.type_byte())
    }

    /// True when this message may travel in `code` ([`USER_COMMAND`] or [`USER_RESPONSE`]).
    pub const fn allowed_in(&self, code: u8) -> bool {
        matches!(
            (self, code),
            (Self::KeyAnnounce { .. }, USER_RESPONSE)
                | (Self::KeyConfirm { .. }, USER_COMMAND)
                | (Self::Capabilities { .. }, USER_COMMAND | USER_RESPONSE)
        )
    }

    /// The payload: magic, version, type, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 2 + 4 + KEY_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.type_byte());
        match self {
            Self::KeyAnnounce { epoch, key } => {
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(key);
            }
            Self::KeyConfirm { epoch } => out.extend_from_slice(&epoch.to_be_bytes()),
            Self::Capabilities { udp_ciphers } => {
                let n = udp_ciphers.len().min(usize::from(u8::MAX));
                out.push(n as u8);
                out.extend(udp_ciphers.iter().take(n).map(|c| c.id()));
            }
        }
        out
    }

    /// Appends the framed user command (0xD5) carrying this message, for the subscriber.
    pub fn write_command(&self, out: &mut Vec<u8>) {
        frame::write_command(out, USER_COMMAND, &self.encode());
    }

    /// Appends the framed user response (0xE5, commandCode 0xD5) carrying this message, for the
    /// publisher.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        frame::write_response(out, USER_RESPONSE, RESPONSE_COMMAND_CODE, &self.encode());
    }

    /// Decodes the payload of user command/response `code`. `Ok(None)`: not ours (another code,
    /// or no `STTPRS` magic — another application's user message); `Err`: ours but malformed,
    /// of an unknown version or type, or in the wrong direction.
    pub fn decode(code: u8, bytes: &[u8]) -> Result<Option<Self>, ExtError> {
        if code != USER_COMMAND && code != USER_RESPONSE {
            return Ok(None);
        }
        let mut r = Reader::new(bytes);
        match r.take(MAGIC.len(), "sttpExt magic") {
            Ok(m) if m == MAGIC => {}
            _ => return Ok(None),
        }
        let version = r.u8("sttpExt version")?;
        if version != VERSION {
            return Err(ExtError::UnsupportedVersion(version));
        }
        let ty = r.u8("sttpExt message type")?;
        let msg = match ty {
            msg_type::KEY_ANNOUNCE => {
                let epoch = r.u32("sttpExt key epoch")?;
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(r.take(KEY_LEN, "sttpExt key")?);
                Self::KeyAnnounce { epoch, key }
            }
            msg_type::KEY_CONFIRM => Self::KeyConfirm {
                epoch: r.u32("sttpExt confirmed epoch")?,
            },
            msg_type::CAPABILITIES => {
                let n = r.u8("sttpExt cipher count")?;
                let ids = r.take(usize::from(n), "sttpExt cipher ids")?;
                Self::Capabilities {
                    udp_ciphers: ids
                        .iter()
                        .filter_map(|&id| UdpCipher::from_id(id))
                        .collect(),
                }
            }
            other => return Err(ExtError::UnknownType(other)),
        };
        if !r.is_empty() {
            return Err(ExtError::TrailingBytes {
                offset: r.position(),
                count: r.remaining(),
            });
        }
        if !msg.allowed_in(code) {
            return Err(ExtError::WrongDirection {
                message: msg.name(),
                code,
            });
        }
        Ok(Some(msg))
    }
}

const fn type_name(ty: u8) -> &'static str {
    match ty {
        msg_type::KEY_ANNOUNCE => "KeyAnnounce",
        msg_type::KEY_CONFIRM => "KeyConfirm",
        msg_type::CAPABILITIES => "Capabilities",
        _ => "unknown",
    }
}

/// The UDP cipher a subscriber asked for with `sttpExt={udpCipher=…}`, read from the Subscribe
/// keys a publisher keeps in `SubscriptionSettings::extra`. The value may list several
/// ciphers separated by `,`; the first known one wins. `None` when absent, unparsable or
/// naming only unknown ciphers (the publisher then serves the standard data channel).
pub fn requested_udp_cipher(extra: &ConnectionString) -> Option<UdpCipher> {
    let inner = ConnectionString::parse(extra.get(CONNECTION_STRING_KEY)?).ok()?;
    inner
        .get(UDP_CIPHER_KEY)?
        .split(',')
        .find_map(UdpCipher::from_name)
}

/// Adds (or replaces) `udpCipher` inside the `sttpExt` key of a subscriber's extra Subscribe
/// keys, keeping any other `sttpExt` settings. Written back braced, e.g.
/// `sttpExt={udpCipher=aes-256-gcm}`.
pub fn request_udp_cipher(extra: &mut ConnectionString, cipher: UdpCipher) {
    let mut inner = extra
        .get(CONNECTION_STRING_KEY)
        .and_then(|v| ConnectionString::parse(v).ok())
        .unwrap_or_default();
    inner.insert(UDP_CIPHER_KEY, cipher.name());
    extra.insert(CONNECTION_STRING_KEY, inner.to_string());
}
