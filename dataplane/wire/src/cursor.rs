//! The one panic-free cursor every decoder of peer bytes goes through.
//!
//! All multi-byte integers of STTP are big-endian (wire.md preamble); GUIDs travel in RFC 4122
//! byte order, which is exactly `Uuid::from_bytes`.

use core::fmt;
use uuid::Uuid;

/// Why a decode failed: what was being read, at which offset, how many bytes it needed and how
/// many were left. `Copy` so hot-path decoders can return it cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// Name of the field or structure being decoded.
    pub what: &'static str,
    /// Offset into the buffer at which the failing read started.
    pub offset: usize,
    /// Bytes the read needed (0 when the failure was not a length problem).
    pub need: usize,
    /// Bytes that were available at `offset`.
    pub have: usize,
    /// Kind of failure.
    pub kind: DecodeErrorKind,
}

/// The classes of decode failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The buffer ended before the field did.
    Truncated,
    /// A field held a value the protocol does not allow.
    Invalid,
    /// A length or count exceeded a limit.
    TooLarge,
}

impl DecodeError {
    /// An invalid-value error at `offset`.
    pub const fn invalid(what: &'static str, offset: usize) -> Self {
        Self {
            what,
            offset,
            need: 0,
            have: 0,
            kind: DecodeErrorKind::Invalid,
        }
    }

    /// A limit error: `need` was asked for, `have` is the limit.
    pub const fn too_large(what: &'static str, offset: usize, need: usize, have: usize) -> Self {
        Self {
            what,
            offset,
            need,
            have,
            kind: DecodeErrorKind::TooLarge,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DecodeErrorKind::Truncated => write!(
                f,
                "truncated {} at offset {}: need {} bytes, have {}",
                self.what, self.offset, self.need, self.have
            ),
            DecodeErrorKind::Invalid => {
                write!(f, "invalid {} at offset {}", self.what, self.offset)
            }
            DecodeErrorKind::TooLarge => write!(
                f,
                "{} at offset {} too large: {} exceeds limit {}",
                self.what, self.offset, self.need, self.have
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A read-only cursor over peer bytes. Every accessor checks bounds and returns a
/// [`DecodeError`] instead of panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let have = self.remaining();
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(DecodeError {
                what,
                offset: self.pos,
                need: n,
                have,
                kind: DecodeErrorKind::Truncated,
            }),
        }
    }

    /// Takes every remaining byte.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    /// Looks at the remaining bytes without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_be_bytes)
    }

    /// Big-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    /// Big-endian `i32`.
    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        self.array(what).map(i32::from_be_bytes)
    }

    /// Big-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// Big-endian `i64`.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// Big-endian IEEE-754 `f32`.
    pub fn f32(&mut self, what: &'static str) -> Result<f32, DecodeError> {
        self.array(what).map(f32::from_be_bytes)
    }

    /// A 16-byte GUID in RFC 4122 byte order.
    pub fn guid(&mut self, what: &'static str) -> Result<Uuid, DecodeError> {
        self.array(what).map(Uuid::from_bytes)
    }

    /// An `i32 BE` length prefix followed by that many bytes, with the length bounded by `limit`.
    pub fn i32_prefixed(
        &mut self,
        what: &'static str,
        limit: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let len = self.i32(what)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::invalid(what, at))?;
        if len > limit {
            return Err(DecodeError::too_large(what, at, len, limit));
        }
        self.take(len, what)
    }

    /// A `u32 BE` length prefix followed by that many bytes, with the length bounded by `limit`.
    pub fn u32_prefixed(
        &mut self,
        what: &'static str,
        limit: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let len = self.u32(what)? as usize;
        if len > limit {
            return Err(DecodeError::too_large(what, at, len, limit));
        }
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_fields() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0x05, 0xff, 0x42, 0x70, 0, 0]);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(r.u32("b").unwrap(), 0x0304_05ff);
        assert_eq!(r.f32("c").unwrap(), 60.0);
        assert!(r.u8("d").is_err());
    }

    #[test]
    fn truncation_reports_offset_need_have() {
        let mut r = Reader::new(&[0, 0, 0]);
        let err = r.u32("count").unwrap_err();
        assert_eq!((err.offset, err.need, err.have), (0, 4, 3));
        assert_eq!(
            err.to_string(),
            "truncated count at offset 0: need 4 bytes, have 3"
        );
    }

    #[test]
    fn prefixed_rejects_negative_and_oversized() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.i32_prefixed("s", 10).unwrap_err().kind,
            DecodeErrorKind::Invalid
        );
        let mut r = Reader::new(&[0, 0, 0, 20]);
        assert_eq!(
            r.i32_prefixed("s", 10).unwrap_err().kind,
            DecodeErrorKind::TooLarge
        );
        let mut r = Reader::new(&[0, 0, 0, 2, b'h', b'i', b'!']);
        assert_eq!(r.i32_prefixed("s", 10).unwrap(), b"hi");
        assert_eq!(r.rest(), b"!");
        assert!(r.is_empty());
    }
}
