//! DataPacket (response 0x82) payload header (wire.md §4): `u8 flags`, optional obsolete `i64`
//! frame time, `i32 BE count`, then compact measurements or a TSSC block.

use crate::cursor::{DecodeError, Reader};

/// DataPacketFlags bits (wire.md §4).
pub mod flags {
    /// Obsolete: an 8-byte frame time follows the flags.
    pub const SYNCHRONIZED: u8 = 0x01;
    /// Compact measurement format (set whenever TSSC is not).
    pub const COMPACT: u8 = 0x02;
    /// Payload encrypted with key set 1 (odd), else 0.
    pub const CIPHER_INDEX: u8 = 0x04;
    /// Payload is TSSC.
    pub const COMPRESSED: u8 = 0x08;
    /// Decode against signal index cache slot 1, else slot 0.
    pub const CACHE_INDEX: u8 = 0x10;
}

/// Offset of the flags byte in a DataPacket payload.
pub const FLAGS: usize = 0;
/// Offset of the measurement count when the packet is not synchronized.
pub const COUNT: usize = 1;
/// Bytes of flags + count.
pub const HEADER_LEN: usize = 5;

/// The decoded fixed part of a DataPacket payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPacketHeader {
    /// DataPacketFlags.
    pub flags: u8,
    /// Obsolete frame time when [`flags::SYNCHRONIZED`] is set.
    pub frame_time: Option<i64>,
    /// Declared measurement count (informational for TSSC).
    pub count: i32,
}

impl DataPacketHeader {
    /// Signal index cache slot the packet refers to.
    pub const fn cache_index(&self) -> usize {
        if self.flags & flags::CACHE_INDEX != 0 {
            1
        } else {
            0
        }
    }

    /// True for a TSSC packet.
    pub const fn is_tssc(&self) -> bool {
        self.flags & flags::COMPRESSED != 0
    }

    /// Decodes the header and returns it with the body that follows.
    pub fn decode(payload: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let mut r = Reader::new(payload);
        let flags = r.u8("data packet flags")?;
        let frame_time = if flags & flags::SYNCHRONIZED != 0 {
            Some(r.i64("data packet frame time")?)
        } else {
            None
        };
        let count = r.i32("data packet count")?;
        Ok((
            Self {
                flags,
                frame_time,
                count,
            },
            r.rest(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_captured_tssc_header() {
        // wire.md §4.2 capture: 08 | 00000003 | 55 | 0000 | …
        let (h, body) = DataPacketHeader::decode(&[0x08, 0, 0, 0, 3, 0x55, 0, 0, 0x11]).unwrap();
        assert!(h.is_tssc());
        assert_eq!(h.count, 3);
        assert_eq!(h.cache_index(), 0);
        assert_eq!(body, [0x55, 0, 0, 0x11]);
    }

    #[test]
    fn truncated_header_is_an_error() {
        assert!(DataPacketHeader::decode(&[0x02, 0, 0]).is_err());
        assert!(DataPacketHeader::decode(&[0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
