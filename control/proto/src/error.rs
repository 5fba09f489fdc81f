//! The crate-boundary error type (design.md habit 4): one `thiserror` enum with precise reasons,
//! and [`ProtoError::failed_message`], the single place that turns an error into the text of an
//! STTP `Failed` (0x81) response (wire.md §1.2).

use crate::encoding::StringEncoding;
use crate::gzip::GunzipError;
use sttp_wire::cursor::DecodeError;

/// The connection-string limits (docs/limits.md), named in
/// [`ProtoError::ConnectionStringLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStrLimit {
    /// Text length in bytes.
    Length,
    /// Number of `key=value` pairs (repeats included).
    Keys,
    /// Depth of `{…}` nesting.
    Nesting,
}

impl ConnStrLimit {
    /// Short name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Keys => "key count",
            Self::Nesting => "brace nesting",
        }
    }

    /// The unit of the limit's value.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Length => "bytes",
            Self::Keys => "keys",
            Self::Nesting => "levels",
        }
    }
}

impl core::fmt::Display for ConnStrLimit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong decoding or validating command-channel data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtoError {
    /// Peer bytes did not parse: what, where, how many bytes were needed and present.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A frame declared a length above the configured limit (wire.md §1 size limits).
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Declared body length.
        len: usize,
        /// Limit in force for this frame.
        limit: usize,
    },
    /// A frame declared a zero-length body; neither commands nor responses can be empty.
    #[error("empty frame: a frame body needs at least a code byte")]
    EmptyFrame,
    /// A string was not valid in the negotiated encoding (wire.md §1 string encoding).
    #[error("invalid {encoding:?} string: {reason}")]
    BadString {
        /// Encoding the bytes were decoded with.
        encoding: StringEncoding,
        /// What was wrong, with the byte offset where known.
        reason: String,
    },
    /// The connection string's syntax was wrong (wire.md §3).
    #[error("bad connection string at offset {offset}: {reason}")]
    BadConnectionString {
        /// Byte offset into the connection string.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A connection string exceeded one of the limits on what a single command may cost
    /// (docs/limits.md): too long, too many keys, or braces nested too deep.
    #[error("connection string exceeds the {limit} limit of {max} at offset {offset}")]
    ConnectionStringLimit {
        /// Byte offset into the connection string where the limit was crossed.
        offset: usize,
        /// Which limit.
        limit: ConnStrLimit,
        /// The limit's value.
        max: usize,
    },
    /// A connection-string value did not parse as its key requires (wire.md §3 key table).
    #[error("bad value {value:?} for {key}: expected {expected}")]
    BadValue {
        /// The key as the peer spelled it.
        key: String,
        /// The offending value.
        value: String,
        /// What the key accepts.
        expected: &'static str,
    },
    /// The subscriber asked for a protocol version other than 1..=3 (wire.md §2).
    #[error("protocol version {0} not supported")]
    UnsupportedVersion(u32),
    /// The subscriber set implementation-specific extension bits this side does not speak
    /// (wire.md §2 ImplementationSpecificExtensionMask, §11 item 3).
    #[error("unsupported extension 0x{0:02X}")]
    UnsupportedExtension(u8),
    /// Subscribe asked for the obsolete Synchronized format (flag 0x01), which cppapi also
    /// rejects (wire.md §1.1).
    #[error("subscribe flags 0x{0:02X} not supported: only compact (0x02) is")]
    UnsupportedSubscribeFlags(u8),
    /// A gzip member was invalid or inflated past its limit.
    #[error("{0}")]
    Gzip(#[from] GunzipError),
}

impl ProtoError {
    /// Text for the STTP `Failed` response answering the command that caused this error. Clear
    /// and specific, so the operator of a stock subscriber sees what to change; the
    /// `UNSUPPORTED EXTENSION:` prefix is the one cppapi documents (wire.md §2).
    pub fn failed_message(&self) -> String {
        match self {
            Self::Decode(e) => format!("Malformed command: {e}."),
            Self::FrameTooLarge { len, limit } => format!(
                "Command frame of {len} bytes exceeds the limit of {limit} bytes; connection closed."
            ),
            Self::EmptyFrame => "Empty command frame received; connection closed.".to_owned(),
            Self::BadString { encoding, reason } => format!(
                "Command string is not valid {}: {reason}.",
                encoding.name()
            ),
            Self::BadConnectionString { offset, reason } => {
                format!("Invalid connection string at offset {offset}: {reason}.")
            }
            Self::ConnectionStringLimit { offset, limit, max } => format!(
                "Connection string rejected at offset {offset}: it exceeds the {} limit of {max} {}.",
                limit.name(),
                limit.unit()
            ),
            Self::BadValue {
                key,
                value,
                expected,
            } => format!("Invalid connection string value {value:?} for \"{key}\": expected {expected}."),
            Self::UnsupportedVersion(v) => format!(
                "Client connection rejected: requested protocol version {v} not supported. \
                 This STTP publisher supports versions 1 to 3."
            ),
            Self::UnsupportedExtension(x) => format!(
                "UNSUPPORTED EXTENSION: implementation-specific extension 0x{x:02X} \
                 (operational modes 0x00FF0000) is not supported by this publisher."
            ),
            Self::UnsupportedSubscribeFlags(f) => format!(
                "Subscribe flags 0x{f:02X} not supported: synchronized subscriptions are obsolete, \
                 use the compact format (0x02)."
            ),
            Self::Gzip(e) => format!("Compressed payload rejected: {e}."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_messages_are_specific() {
        let e = ProtoError::UnsupportedExtension(0xA5);
        assert!(e.failed_message().starts_with("UNSUPPORTED EXTENSION:"));
        let e = ProtoError::BadValue {
            key: "lagTime".into(),
            value: "x".into(),
            expected: "a number",
        };
        assert!(e.failed_message().contains("lagTime"));
        let e = ProtoError::ConnectionStringLimit {
            offset: 7,
            limit: ConnStrLimit::Keys,
            max: 1024,
        };
        assert_eq!(
            e.failed_message(),
            "Connection string rejected at offset 7: it exceeds the key count limit of 1024 keys."
        );
        assert!(ProtoError::UnsupportedVersion(9)
            .failed_message()
            .contains("version 9"));
    }
}
