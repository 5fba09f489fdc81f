//! Bit/byte interleaving of the TSSC stream (wire.md §4.2 "Bit/byte interleaving").
//!
//! A TSSC block is one byte array that mixes two streams: code words and 4-bit nibbles are packed
//! MSB-first into *slot* bytes, while whole bytes (XOR payloads, varints) are appended at the
//! current position in between. The writer reserves a slot byte the moment the first bit of a new
//! byte is written and fills it once 8 bits have accumulated, so a slot can sit *before* bytes
//! that were appended later. The reader mirrors that: it fetches a new slot byte from the current
//! position only when its 8 bits are used up.

use crate::cursor::{DecodeError, DecodeErrorKind};

/// Marker for "no slot reserved".
const NO_SLOT: usize = usize::MAX;

/// Encoder half: the pending bits and the index (in the output `Vec`) of their reserved slot.
#[derive(Debug, Clone)]
pub(crate) struct BitWriter {
    slot: usize,
    cache: u32,
    count: u32,
}

impl BitWriter {
    /// No pending bits, no slot.
    pub(crate) const fn new() -> Self {
        Self {
            slot: NO_SLOT,
            cache: 0,
            count: 0,
        }
    }

    /// True when bits are waiting for their slot to be completed.
    #[inline]
    pub(crate) const fn pending(&self) -> bool {
        self.count > 0
    }

    /// Appends the low `n` (≤ 8) bits of `bits`, MSB first.
    ///
    /// Because fewer than 8 bits are ever pending and `n ≤ 8`, at most one slot completes per call.
    #[inline(always)]
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, bits: u32, n: u32) {
        if self.slot == NO_SLOT {
            self.slot = out.len();
            out.push(0);
        }
        // Only the low `count` bits matter; older bits shifted past bit 31 are already flushed.
        self.cache = (self.cache << n) | bits;
        self.count += n;
        if self.count >= 8 {
            self.count -= 8;
            if let Some(b) = out.get_mut(self.slot) {
                *b = (self.cache >> self.count) as u8;
            }
            if self.count > 0 {
                self.slot = out.len();
                out.push(0);
            } else {
                self.slot = NO_SLOT;
            }
        }
    }

    /// Writes the pending bits, zero-padded on the right, into their slot and clears the state.
    pub(crate) fn pad(&mut self, out: &mut [u8]) {
        if self.count > 0 {
            if let Some(b) = out.get_mut(self.slot) {
                *b = (self.cache << (8 - self.count)) as u8;
            }
        }
        *self = Self::new();
    }
}

#[cold]
#[inline(never)]
fn truncated(offset: usize) -> DecodeError {
    DecodeError {
        what: "tssc stream",
        offset,
        need: 1,
        have: 0,
        kind: DecodeErrorKind::Truncated,
    }
}

/// Decoder half: a cursor over one block with the current slot byte and its unread bit count.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    cache: u32,
    left: u32,
}

impl<'a> BitReader<'a> {
    /// A reader at the start of `data` with no slot loaded.
    pub(crate) const fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            cache: 0,
            left: 0,
        }
    }

    /// True when every byte and every bit of the block has been consumed (the block end when the
    /// encoder had no pending bits and so wrote no EndOfStream).
    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.left == 0 && self.pos >= self.data.len()
    }

    /// The next whole byte at the current position.
    #[inline(always)]
    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(truncated(self.pos)),
        }
    }

    /// Loads the next slot byte.
    #[inline(always)]
    fn refill(&mut self) -> Result<(), DecodeError> {
        self.cache = u32::from(self.byte()?);
        self.left = 8;
        Ok(())
    }

    /// One adaptive code word (wire.md §4.2 "Adaptive code emission"): `prefix` (mode − 1)
    /// short codes sent as `1`, `01`, `001`, anything else as `prefix` zeros + 5 bits.
    ///
    /// Instead of reading bit by bit, this peeks at the next 8 bits: the unread bits of the
    /// current slot followed by the byte at `pos`. If the code crosses into a new slot, that
    /// slot *is* the byte at `pos` (the encoder reserves the next slot the moment a code
    /// overflows the current one); if it does not, the byte is looked at but not consumed.
    #[inline(always)]
    pub(crate) fn code(&mut self, shorts: &[u8; 3], prefix: u8) -> Result<u8, DecodeError> {
        let next = self.data.get(self.pos).copied();
        let unread = self.cache & ((1u32 << self.left) - 1);
        let window = (((unread << 8) | u32::from(next.unwrap_or(0))) >> self.left) as u8;
        let zeros = window.leading_zeros();
        let prefix = u32::from(prefix);
        let (code, len) = if zeros < prefix {
            let short = shorts.get(zeros as usize).copied().unwrap_or(0);
            (short, zeros + 1)
        } else {
            ((window >> (3 - prefix)) & 31, 5 + prefix)
        };
        if len <= self.left {
            self.left -= len;
        } else {
            let Some(b) = next else {
                return Err(truncated(self.pos));
            };
            self.cache = u32::from(b);
            self.pos += 1;
            self.left = self.left + 8 - len;
        }
        Ok(code)
    }

    /// `n` (1..=8) bits, MSB first, possibly spanning two slot bytes.
    #[inline(always)]
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, DecodeError> {
        if self.left >= n {
            self.left -= n;
            return Ok((self.cache >> self.left) & ((1 << n) - 1));
        }
        let have = self.left;
        let high = self.cache & ((1 << have) - 1);
        self.refill()?;
        let need = n - have;
        self.left = 8 - need;
        Ok((high << need) | ((self.cache >> self.left) & ((1 << need) - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_precedes_later_bytes() {
        let mut out = Vec::new();
        let mut w = BitWriter::new();
        w.write(&mut out, 0b0011, 4); // reserves slot 0
        out.push(0xAB); // a whole byte lands after the slot
        w.write(&mut out, 0b0001, 4); // completes slot 0
        assert!(!w.pending());
        w.write(&mut out, 0b101, 3); // reserves slot 2
        w.pad(&mut out);
        assert_eq!(out, [0x31, 0xAB, 0b1010_0000]);

        let mut r = BitReader::new(&out);
        assert_eq!(r.bits(4).unwrap(), 0b0011);
        assert_eq!(r.byte().unwrap(), 0xAB);
        assert_eq!(r.bits(4).unwrap(), 0b0001);
        assert_eq!(r.bits(3).unwrap(), 0b101);
        assert_eq!(r.bits(5).unwrap(), 0);
        assert!(r.at_end());
        assert!(r.bits(1).is_err());
    }

    #[test]
    fn bits_span_slots() {
        let mut out = Vec::new();
        let mut w = BitWriter::new();
        for (v, n) in [(0b101, 3), (0b1100_1010, 8), (0b11111, 5)] {
            w.write(&mut out, v, n);
        }
        assert!(!w.pending());
        let mut r = BitReader::new(&out);
        assert_eq!(r.bits(3).unwrap(), 0b101);
        assert_eq!(r.bits(8).unwrap(), 0b1100_1010);
        assert_eq!(r.bits(5).unwrap(), 0b11111);
        assert!(r.at_end());
    }

    /// Bit-by-bit reading as wire.md describes it, to check the peeking `code`.
    fn oracle(r: &mut BitReader<'_>, shorts: &[u8; 3], prefix: u8) -> Result<u8, DecodeError> {
        for &short in shorts.iter().take(usize::from(prefix)) {
            if r.bits(1)? == 1 {
                return Ok(short);
            }
        }
        Ok(r.bits(5)? as u8)
    }

    #[test]
    fn peeking_code_matches_bitwise_reading() {
        let shorts = [7, 19, 3];
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let data = seed.to_le_bytes();
            let len = (seed >> 60) as usize % 9;
            let prefix = (seed >> 56) as u8 % 4;
            let skip = (seed >> 50) as u32 % 8;
            let (mut a, mut b) = (BitReader::new(&data[..len]), BitReader::new(&data[..len]));
            let _ = (a.bits(skip.max(1)), b.bits(skip.max(1)));
            for _ in 0..4 {
                let x = a.code(&shorts, prefix);
                let y = oracle(&mut b, &shorts, prefix);
                assert_eq!(x.is_ok(), y.is_ok());
                let (Ok(x), Ok(y)) = (x, y) else {
                    break; // the bitwise reader may have consumed part of the code
                };
                assert_eq!(x, y);
                assert_eq!((a.pos, a.left), (b.pos, b.left));
            }
        }
    }
}
