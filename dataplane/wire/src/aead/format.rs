//! Layout of an authenticated datagram (our extension, wire.md §11; only between our own peers).
//!
//! ```text
//! offset  size  field
//!      0     1  magic/version  0xA5 — not a ServerResponse code (wire.md §1.2), so a stock
//!                              parser that receives a sealed datagram rejects it at byte 0
//!      1     4  key epoch      u32 BE, which announced key sealed it
//!      5     8  sequence       u64 BE, per-epoch counter from 0, never reused under one key
//!     13     n  ciphertext     AES-256-GCM of one bare response body (wire.md §8)
//!   13+n    16  tag            GCM tag over AAD = bytes 0..13 and the ciphertext
//! ```
//!
//! The 96-bit nonce is `00 00 00 00 ‖ sequence (BE)`. That is safe because every epoch has its
//! own freshly generated random key and the sender never repeats a sequence under one key, so a
//! (key, nonce) pair never repeats.

use core::ops::Range;

/// Magic/version byte of format version 1.
pub const MAGIC: u8 = 0xA5;

/// Field offsets (smoltcp style): use these, never bare numbers.
pub mod field {
    use core::ops::Range;

    /// The magic/version byte.
    pub const MAGIC: usize = 0;
    /// The `u32` key epoch.
    pub const EPOCH: Range<usize> = 1..5;
    /// The `u64` sequence number.
    pub const SEQUENCE: Range<usize> = 5..13;
}

/// Bytes of the clear-text header, which is also the AAD.
pub const HEADER_LEN: usize = field::SEQUENCE.end;
/// Bytes of the GCM tag at the end of the datagram.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed datagram adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Bytes of the GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Where the sequence sits inside the nonce; the bytes before it stay zero.
const NONCE_SEQUENCE: Range<usize> = 4..12;

/// The clear-text header of a sealed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Epoch of the key that sealed the datagram.
    pub epoch: u32,
    /// Per-epoch sequence number.
    pub sequence: u64,
}

/// Why a datagram's header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than [`OVERHEAD`]: not even an empty plaintext fits.
    Short,
    /// Byte 0 is not [`MAGIC`]: another format version, or not a sealed datagram at all.
    BadVersion,
}

impl Header {
    /// The header bytes, which are also the AAD.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (magic, rest) = out.split_at_mut(field::EPOCH.start);
        let (epoch, sequence) = rest.split_at_mut(field::EPOCH.len());
        magic.fill(MAGIC);
        epoch.copy_from_slice(&self.epoch.to_be_bytes());
        sequence.copy_from_slice(&self.sequence.to_be_bytes());
        out
    }

    /// Reads the header of a whole datagram, checking it can hold header and tag.
    pub fn parse(datagram: &[u8]) -> Result<Self, HeaderError> {
        if datagram.len() < OVERHEAD {
            return Err(HeaderError::Short);
        }
        let mut r = crate::cursor::Reader::new(datagram);
        // The length check above makes these reads infallible; map defensively anyway.
        let magic = r.u8("aead magic").map_err(|_| HeaderError::Short)?;
        if magic != MAGIC {
            return Err(HeaderError::BadVersion);
        }
        let epoch = r.u32("aead epoch").map_err(|_| HeaderError::Short)?;
        let sequence = r.u64("aead sequence").map_err(|_| HeaderError::Short)?;
        Ok(Self { epoch, sequence })
    }

    /// The GCM nonce for this header's sequence.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        nonce(self.sequence)
    }
}

/// The GCM nonce of `sequence`: four zero bytes, then the sequence big-endian.
pub fn nonce(sequence: u64) -> [u8; NONCE_LEN] {
    let mut out = [0u8; NONCE_LEN];
    if let Some(tail) = out.get_mut(NONCE_SEQUENCE) {
        tail.copy_from_slice(&sequence.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = Header {
            epoch: 0x0102_0304,
            sequence: 0x1112_1314_1516_1718,
        };
        let b = h.encode();
        assert_eq!(
            b,
            [0xA5, 1, 2, 3, 4, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
        let mut d = b.to_vec();
        d.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(Header::parse(&d), Ok(h));
        assert_eq!(Header::parse(&d[..OVERHEAD - 1]), Err(HeaderError::Short));
        d[0] = 0x82;
        assert_eq!(Header::parse(&d), Err(HeaderError::BadVersion));
        assert_eq!(
            h.nonce(),
            [0, 0, 0, 0, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
    }

    #[test]
    fn magic_is_not_a_response_code() {
        // wire.md §1.2: 0x80–0x8A, 0xE0–0xEF, 0xFF are the codes a stock subscriber knows.
        assert!(!(0x80..=0x8A).contains(&MAGIC));
        assert!(!(0xE0..=0xEF).contains(&MAGIC));
        assert_ne!(MAGIC, 0xFF);
    }
}
