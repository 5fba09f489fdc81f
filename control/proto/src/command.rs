//! Subscriber → publisher commands (wire.md §1.1): a frame body is `u8 code` + payload, with no
//! inner length; command strings carry an `i32 BE` byte-length prefix (wire.md §1).

use crate::encoding::StringEncoding;
use crate::error::ProtoError;
use crate::opmodes::OperationalModes;
use sttp_wire::cursor::{DecodeError, Reader};
use sttp_wire::frame;

/// ServerCommand codes (wire.md §1.1).
pub mod code {
    /// Never sent; publishers use it as the commandCode of a connection-refused `Failed`.
    pub const CONNECT: u8 = 0x00;
    /// Request metadata, optionally with filters.
    pub const METADATA_REFRESH: u8 = 0x01;
    /// Subscribe with a connection string.
    pub const SUBSCRIBE: u8 = 0x02;
    /// Stop publishing.
    pub const UNSUBSCRIBE: u8 = 0x03;
    /// Ask for new cipher keys.
    pub const ROTATE_CIPHER_KEYS: u8 = 0x04;
    /// Change the temporal replay interval.
    pub const UPDATE_PROCESSING_INTERVAL: u8 = 0x05;
    /// The first command: the operational modes word.
    pub const DEFINE_OPERATIONAL_MODES: u8 = 0x06;
    /// Echo of a Notify hash.
    pub const CONFIRM_NOTIFICATION: u8 = 0x07;
    /// Echo of a BufferBlock sequence number.
    pub const CONFIRM_BUFFER_BLOCK: u8 = 0x08;
    /// cppapi/pyapi name; gsfapi uses 0x09 for PublishCommandMeasurements (wire.md §1.1).
    pub const CONFIRM_UPDATE_BASE_TIMES: u8 = 0x09;
    /// The v2 double-buffer confirm (wire.md §5).
    pub const CONFIRM_UPDATE_SIGNAL_INDEX_CACHE: u8 = 0x0A;
    /// Defined in cppapi/pyapi only; nobody sends it.
    pub const CONFIRM_UPDATE_CIPHER_KEYS: u8 = 0x0B;
    /// Defined, unimplemented everywhere.
    pub const GET_PRIMARY_METADATA_SCHEMA: u8 = 0x0C;
    /// Defined, unimplemented everywhere.
    pub const GET_SIGNAL_SELECTION_SCHEMA: u8 = 0x0D;
    /// First user command.
    pub const USER_COMMAND_00: u8 = 0xD0;
    /// Last user command.
    pub const USER_COMMAND_15: u8 = 0xDF;
}

/// Subscribe flag: compact format, the only one stock subscribers send (wire.md §1.1).
pub const SUBSCRIBE_FLAG_COMPACT: u8 = 0x02;
/// Subscribe flag: obsolete synchronized format (cppapi rejects it).
pub const SUBSCRIBE_FLAG_SYNCHRONIZED: u8 = 0x01;

/// True for the codes in wire.md §1.1 (0x00–0x0D, 0xD0–0xDF). The Python subscriber raises and
/// disconnects when a response's commandCode byte is anything else, so a publisher must only
/// echo these.
pub const fn is_known_command_code(c: u8) -> bool {
    c <= code::GET_SIGNAL_SELECTION_SCHEMA || is_user_command(c)
}

/// True for UserCommand00–15 (0xD0–0xDF).
pub const fn is_user_command(c: u8) -> bool {
    c >= code::USER_COMMAND_00 && c <= code::USER_COMMAND_15
}

/// A decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 0x06: the operational modes word.
    DefineOperationalModes(OperationalModes),
    /// 0x01: `None` when the payload is empty, else the `;`-separated metadata filters.
    MetadataRefresh {
        /// Filters, e.g. `FILTER MeasurementDetail WHERE SignalAcronym <> 'STAT'`.
        filters: Option<String>,
    },
    /// 0x02: flags (0x02 compact) and the connection string (wire.md §3).
    Subscribe {
        /// Subscribe flags; see [`SUBSCRIBE_FLAG_COMPACT`].
        flags: u8,
        /// The `key=value;…` connection string.
        connection_string: String,
    },
    /// 0x03.
    Unsubscribe,
    /// 0x04.
    RotateCipherKeys,
    /// 0x05: new processing interval in ms (−1 = default).
    UpdateProcessingInterval(i32),
    /// 0x07: the hash of the Notify being confirmed.
    ConfirmNotification(i32),
    /// 0x08: the sequence number of the buffer block being confirmed.
    ConfirmBufferBlock(u32),
    /// 0x09 with an empty payload (cppapi/pyapi meaning; no stock subscriber sends it).
    ConfirmUpdateBaseTimes,
    /// 0x0A.
    ConfirmUpdateSignalIndexCache,
    /// 0x0B.
    ConfirmUpdateCipherKeys,
    /// 0x0C.
    GetPrimaryMetadataSchema,
    /// 0x0D.
    GetSignalSelectionSchema,
    /// 0xD0–0xDF with an opaque payload.
    User {
        /// The user command code.
        code: u8,
        /// Opaque payload.
        data: Vec<u8>,
    },
    /// Anything else, kept whole so the session can answer `Failed` or ignore it. This includes
    /// 0x00 Connect (never sent by subscribers) and 0x09 with a payload (gsfapi's
    /// PublishCommandMeasurements, which this implementation does not support).
    Unknown {
        /// The command code.
        code: u8,
        /// The payload after the code byte.
        data: Vec<u8>,
    },
}

/// Upper bound accepted for a command string (the frame limit normally binds first).
const MAX_COMMAND_STRING: usize = i32::MAX as usize;

impl Command {
    /// The command code this variant travels with.
    pub fn code(&self) -> u8 {
        match self {
            Self::DefineOperationalModes(_) => code::DEFINE_OPERATIONAL_MODES,
            Self::MetadataRefresh { .. } => code::METADATA_REFRESH,
            Self::Subscribe { .. } => code::SUBSCRIBE,
            Self::Unsubscribe => code::UNSUBSCRIBE,
            Self::RotateCipherKeys => code::ROTATE_CIPHER_KEYS,
            Self::UpdateProcessingInterval(_) => code::UPDATE_PROCESSING_INTERVAL,
            Self::ConfirmNotification(_) => code::CONFIRM_NOTIFICATION,
            Self::ConfirmBufferBlock(_) => code::CONFIRM_BUFFER_BLOCK,
            Self::ConfirmUpdateBaseTimes => code::CONFIRM_UPDATE_BASE_TIMES,
            Self::ConfirmUpdateSignalIndexCache => code::CONFIRM_UPDATE_SIGNAL_INDEX_CACHE,
            Self::ConfirmUpdateCipherKeys => code::CONFIRM_UPDATE_CIPHER_KEYS,
            Self::GetPrimaryMetadataSchema => code::GET_PRIMARY_METADATA_SCHEMA,
            Self::GetSignalSelectionSchema => code::GET_SIGNAL_SELECTION_SCHEMA,
            Self::User { code, .. } | Self::Unknown { code, .. } => *code,
        }
    }

    /// Decodes a command frame body (`code` + payload, without the u32 prefix).
    ///
    /// Fixed-size payloads ignore trailing bytes, as cppapi and gsfapi do (they only check a
    /// minimum length). Strings are decoded strictly in `enc`.
    pub fn decode(body: &[u8], enc: StringEncoding) -> Result<Command, ProtoError> {
        let mut r = Reader::new(body);
        let c = r.u8("command code")?;
        Ok(match c {
            code::DEFINE_OPERATIONAL_MODES => {
                Self::DefineOperationalModes(OperationalModes(r.u32("operational modes")?))
            }
            code::METADATA_REFRESH => {
                if r.is_empty() {
                    Self::MetadataRefresh { filters: None }
                } else {
                    let raw = r.i32_prefixed("metadata filters", MAX_COMMAND_STRING)?;
                    Self::MetadataRefresh {
                        filters: Some(enc.decode(raw)?),
                    }
                }
            }
            code::SUBSCRIBE => {
                let flags = r.u8("subscribe flags")?;
                let raw = r.i32_prefixed("connection string", MAX_COMMAND_STRING)?;
                Self::Subscribe {
                    flags,
                    connection_string: enc.decode(raw)?,
                }
            }
            code::UNSUBSCRIBE => Self::Unsubscribe,
            code::ROTATE_CIPHER_KEYS => Self::RotateCipherKeys,
            code::UPDATE_PROCESSING_INTERVAL => {
                Self::UpdateProcessingInterval(r.i32("processing interval")?)
            }
            code::CONFIRM_NOTIFICATION => Self::ConfirmNotification(r.i32("notification hash")?),
            code::CONFIRM_BUFFER_BLOCK => {
                Self::ConfirmBufferBlock(r.u32("buffer block sequence number")?)
            }
            code::CONFIRM_UPDATE_BASE_TIMES if r.is_empty() => Self::ConfirmUpdateBaseTimes,
            code::CONFIRM_UPDATE_SIGNAL_INDEX_CACHE => Self::ConfirmUpdateSignalIndexCache,
            code::CONFIRM_UPDATE_CIPHER_KEYS => Self::ConfirmUpdateCipherKeys,
            code::GET_PRIMARY_METADATA_SCHEMA => Self::GetPrimaryMetadataSchema,
            code::GET_SIGNAL_SELECTION_SCHEMA => Self::GetSignalSelectionSchema,
            c if is_user_command(c) => Self::User {
                code: c,
                data: r.rest().to_vec(),
            },
            c => Self::Unknown {
                code: c,
                data: r.rest().to_vec(),
            },
        })
    }

    /// Appends the payload (everything after the code byte) to `out`.
    pub fn encode_payload(&self, enc: StringEncoding, out: &mut Vec<u8>) {
        match self {
            Self::DefineOperationalModes(m) => out.extend_from_slice(&m.0.to_be_bytes()),
            Self::MetadataRefresh { filters } => {
                if let Some(f) = filters {
                    put_string(out, &enc.encode(f));
                }
            }
            Self::Subscribe {
                flags,
                connection_string,
            } => {
                out.push(*flags);
                put_string(out, &enc.encode(connection_string));
            }
            Self::UpdateProcessingInterval(v) | Self::ConfirmNotification(v) => {
                out.extend_from_slice(&v.to_be_bytes());
            }
            Self::ConfirmBufferBlock(v) => out.extend_from_slice(&v.to_be_bytes()),
            Self::User { data, .. } | Self::Unknown { data, .. } => out.extend_from_slice(data),
            Self::Unsubscribe
            | Self::RotateCipherKeys
            | Self::ConfirmUpdateBaseTimes
            | Self::ConfirmUpdateSignalIndexCache
            | Self::ConfirmUpdateCipherKeys
            | Self::GetPrimaryMetadataSchema
            | Self::GetSignalSelectionSchema => {}
        }
    }

    /// Appends a whole command frame (u32 length prefix, code, payload) to `out`.
    pub fn encode(&self, enc: StringEncoding, out: &mut Vec<u8>) {
        let mut payload = Vec::new();
        self.encode_payload(enc, &mut payload);
        frame::write_command(out, self.code(), &payload);
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        command_name(self.code())
    }
}

/// The wire.md §1.1 name of a command code, for logs and messages.
pub const fn command_name(c: u8) -> &'static str {
    match c {
        code::CONNECT => "Connect",
        code::METADATA_REFRESH => "MetadataRefresh",
        code::SUBSCRIBE => "Subscribe",
        code::UNSUBSCRIBE => "Unsubscribe",
        code::ROTATE_CIPHER_KEYS => "RotateCipherKeys",
        code::UPDATE_PROCESSING_INTERVAL => "UpdateProcessingInterval",
        code::DEFINE_OPERATIONAL_MODES => "DefineOperationalModes",
        code::CONFIRM_NOTIFICATION => "ConfirmNotification",
        code::CONFIRM_BUFFER_BLOCK => "ConfirmBufferBlock",
        code::CONFIRM_UPDATE_BASE_TIMES => "ConfirmUpdateBaseTimes",
        code::CONFIRM_UPDATE_SIGNAL_INDEX_CACHE => "ConfirmUpdateSignalIndexCache",
        code::CONFIRM_UPDATE_CIPHER_KEYS => "ConfirmUpdateCipherKeys",
        code::GET_PRIMARY_METADATA_SCHEMA => "GetPrimaryMetadataSchema",
        code::GET_SIGNAL_SELECTION_SCHEMA => "GetSignalSelectionSchema",
        c if is_user_command(c) => "UserCommand",
        _ => "Unknown",
    }
}

/// Writes an `i32 BE` byte length and the bytes (wire.md §1: command strings).
pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a big-endian `i32` command payload, e.g. UpdateProcessingInterval's (wire.md §1.1).
pub fn decode_i32_payload(payload: &[u8], what: &'static str) -> Result<i32, DecodeError> {
    Reader::new(payload).i32(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_define_operational_modes_bytes() {
        let wire = [0, 0, 0, 5, 0x06, 0xE0, 0x00, 0x02, 0x62];
        let cmd = Command::decode(&wire[4..], StringEncoding::Utf8).unwrap();
        assert_eq!(
            cmd,
            Command::DefineOperationalModes(OperationalModes(0xE000_0262))
        );
        let mut out = Vec::new();
        cmd.encode(StringEncoding::Utf8, &mut out);
        assert_eq!(out, wire);
    }

    #[test]
    fn metadata_refresh_with_and_without_filters() {
        let c = Command::decode(&[1], StringEncoding::Utf8).unwrap();
        assert_eq!(c, Command::MetadataRefresh { filters: None });
        let c = Command::decode(&[1, 0, 0, 0, 2, b'a', b'b'], StringEncoding::Utf8).unwrap();
        assert_eq!(
            c,
            Command::MetadataRefresh {
                filters: Some("ab".into())
            }
        );
        assert!(Command::decode(&[1, 0, 0, 0, 3, b'a'], StringEncoding::Utf8).is_err());
        assert!(Command::decode(&[1, 0xFF, 0xFF, 0xFF, 0xFF], StringEncoding::Utf8).is_err());
    }

    #[test]
    fn subscribe_utf16_length_is_bytes() {
        let cmd = Command::Subscribe {
            flags: SUBSCRIBE_FLAG_COMPACT,
            connection_string: "a=1".into(),
        };
        let mut out = Vec::new();
        cmd.encode(StringEncoding::Utf16Le, &mut out);
        assert_eq!(&out[4..11], &[0x02, 0x02, 0, 0, 0, 6, b'a']);
        assert_eq!(
            Command::decode(&out[4..], StringEncoding::Utf16Le).unwrap(),
            cmd
        );
    }

    #[test]
    fn codes_and_odd_cases() {
        assert!(Command::decode(&[], StringEncoding::Utf8).is_err());
        assert!(Command::decode(&[6, 0, 0], StringEncoding::Utf8).is_err());
        assert_eq!(
            Command::decode(&[9, 1], StringEncoding::Utf8).unwrap(),
            Command::Unknown {
                code: 9,
                data: vec![1]
            }
        );
        assert_eq!(
            Command::decode(&[9], StringEncoding::Utf8).unwrap(),
            Command::ConfirmUpdateBaseTimes
        );
        assert_eq!(
            Command::decode(&[0xD3, 7], StringEncoding::Utf8).unwrap(),
            Command::User {
                code: 0xD3,
                data: vec![7]
            }
        );
        assert!(is_known_command_code(0x0D) && !is_known_command_code(0x0E));
        assert!(is_known_command_code(0xDF) && !is_known_command_code(0xE0));
    }
}
