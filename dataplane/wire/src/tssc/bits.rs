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

    /// One bit.
    #[inline(always)]
    pub(crate) fn bit(&mut self) -> Result<u32, DecodeError> {
        if self.left == 0 {
            self.refill()?;
        }
        self.left -= 1;
        Ok((self.cache >> self.left) & 1)
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
        assert!(r.bit().is_err());
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
}
