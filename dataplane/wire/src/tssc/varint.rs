//! The 7-bit varints of the TSSC byte stream (wire.md §4.2 "Varints").
//!
//! Little-endian groups of 7 bits with the high bit as continuation, except for the last
//! possible byte: the 5th byte of a `varint32` carries `v >> 28` raw and the 9th byte of a
//! `varint64` carries all 8 bits of `v >> 56` with no continuation bit. The 9-byte form is what
//! keeps a 64-bit timestamp XOR at 9 bytes instead of LEB128's 10, and makes values ≥ 2^56
//! differ from LEB128.

use crate::cursor::DecodeError;

/// Appends `v` as a varint32 (1..=5 bytes).
#[inline]
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    put::<5>(out, u64::from(v));
}

/// Appends `v` as a varint64 (1..=9 bytes).
#[inline]
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    put::<9>(out, v);
}

/// The shared encoder: 7-bit groups with a continuation bit, except byte `N`, which carries
/// whatever bits remain, raw (`v >> 28` for varint32, `v >> 56` for varint64).
#[inline(always)]
fn put<const N: usize>(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; N];
    let mut n = N;
    let mut rest = v;
    for (i, slot) in buf.iter_mut().enumerate() {
        if i == N - 1 {
            *slot = rest as u8;
            break;
        }
        if rest < 0x80 {
            *slot = rest as u8;
            n = i + 1;
            break;
        }
        *slot = (rest as u8) | 0x80;
        rest >>= 7;
    }
    // Fixed-size append plus trim: no variable-length copy.
    let len = out.len();
    out.extend_from_slice(&buf);
    out.truncate(len + n);
}

#[cold]
fn truncated(what: &'static str, at: usize, have: usize) -> DecodeError {
    DecodeError {
        what,
        offset: at,
        need: 1,
        have,
        kind: crate::cursor::DecodeErrorKind::Truncated,
    }
}

/// Reads a varint32 at `*pos`, advancing it.
#[inline]
pub(crate) fn get_u32(data: &[u8], pos: &mut usize) -> Result<u32, DecodeError> {
    let start = *pos;
    let mut v: u32 = 0;
    for i in 0..5u32 {
        let b = *data
            .get(*pos)
            .ok_or_else(|| truncated("tssc varint32", start, data.len().saturating_sub(start)))?;
        *pos += 1;
        if i == 4 {
            return Ok(v | (u32::from(b) << 28));
        }
        v |= u32::from(b & 0x7F) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Ok(v)
}

/// Reads a varint64 at `*pos`, advancing it.
#[inline]
pub(crate) fn get_u64(data: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..9u32 {
        let b = *data
            .get(*pos)
            .ok_or_else(|| truncated("tssc varint64", start, data.len().saturating_sub(start)))?;
        *pos += 1;
        if i == 8 {
            return Ok(v | (u64::from(b) << 56));
        }
        v |= u64::from(b & 0x7F) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt64(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, v);
        let mut pos = 0;
        assert_eq!(get_u64(&out, &mut pos).unwrap(), v);
        assert_eq!(pos, out.len());
        out
    }

    fn rt32(v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        put_u32(&mut out, v);
        let mut pos = 0;
        assert_eq!(get_u32(&out, &mut pos).unwrap(), v);
        assert_eq!(pos, out.len());
        out
    }

    #[test]
    fn varint64_lengths_and_ninth_byte() {
        assert_eq!(rt64(0), [0]);
        assert_eq!(rt64(127), [127]);
        assert_eq!(rt64(128), [0x80, 1]);
        assert_eq!(rt64((1 << 56) - 1).len(), 8);
        assert_eq!(rt64(1 << 56).len(), 9);
        assert_eq!(
            rt64(u64::MAX),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        // wire.md §4.2 block 1: T0 as a 9-byte varint.
        assert_eq!(
            rt64(638_000_000_000_000_000),
            [0x80, 0x80, 0xcc, 0xb5, 0xea, 0xb3, 0xa8, 0xed, 0x08]
        );
    }

    #[test]
    fn varint32_lengths_and_fifth_byte() {
        assert_eq!(rt32(0x7F), [0x7F]);
        assert_eq!(rt32(0x1_0000).len(), 3);
        assert_eq!(rt32(u32::MAX), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
        assert_eq!(rt32(0x10000), [0x80, 0x80, 0x04]);
    }

    #[test]
    fn truncated_varints_are_errors() {
        let mut pos = 0;
        assert!(get_u64(&[0x80, 0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(get_u32(&[], &mut pos).is_err());
    }
}
