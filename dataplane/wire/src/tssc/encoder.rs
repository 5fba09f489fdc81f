//! The TSSC block encoder (wire.md §4.2 "Encoder `tryAdd`" and "`finishBlock()`").

use super::bits::BitWriter;
use super::codes::{
    point_id_code, xor_class, END_OF_STREAM, QUALITY2, QUALITY_7BIT32, TIME_XOR_7BIT, VALUE1,
    VALUE2, VALUE3, VALUE_XOR4, VALUE_ZERO,
};
use super::point::Points;
use super::time::TimeState;
use super::{varint, DEFAULT_MAX_ID};

/// A new point is refused when fewer than this many bytes of the block remain (wire.md §4.2
/// "Packet splitting"). One point needs at most 27 bytes and the EndOfStream at most 2, so a
/// block never exceeds its limit.
pub const BLOCK_RESERVE: usize = 100;

/// What [`Encoder::add`] did with a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// Encoded into the current block.
    Added,
    /// The block is full; nothing was written. Finish it and start a new one.
    Full,
    /// The runtime ID is negative or above the encoder's `max_id`; nothing was written.
    /// TSSC keeps a table indexed by ID, so IDs must be small and dense (wire.md §4.2).
    IdOutOfRange,
}

/// TSSC encoder session state. Point table, timestamp history and code tables persist across
/// blocks; only the bit cache is per block. A new session (new signal index cache) needs a new
/// `Encoder` (wire.md §4.2 "Publisher reset").
#[derive(Debug, Clone)]
pub struct Encoder {
    points: Points,
    /// Table index of "lastPoint".
    last: usize,
    time: TimeState,
    bits: BitWriter,
    /// Start of the current block in `out`.
    block_start: usize,
    /// Absolute index in `out` the block must not reach.
    block_end: usize,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends the payload of an XOR of size class `class` (see [`xor_class`]): an optional
/// nibble into the bit stream, then little-endian whole bytes.
#[inline(always)]
fn write_xor(bits: &mut BitWriter, out: &mut Vec<u8>, x: u32, class: u8) {
    let (y, n) = if class & 1 == 1 {
        bits.write(out, x & 0xF, 4);
        (x >> 4, usize::from((class - 1) / 2))
    } else {
        (x, usize::from(class / 2))
    };
    // A fixed 4-byte append compiles to one store; trimming the unused bytes is a length
    // update. Cheaper than a variable-length copy.
    let len = out.len();
    out.extend_from_slice(&y.to_le_bytes());
    out.truncate(len + n);
}

impl Encoder {
    /// A fresh session accepting runtime IDs `0..=1<<20`.
    pub fn new() -> Self {
        Self::with_max_id(DEFAULT_MAX_ID)
    }

    /// A fresh session accepting runtime IDs `0..=max_id` (bounds the point table's memory).
    pub fn with_max_id(max_id: i32) -> Self {
        Self {
            points: Points::new(max_id),
            last: 0,
            time: TimeState::new(),
            bits: BitWriter::new(),
            block_start: 0,
            block_end: 0,
        }
    }

    /// Starts a block whose stream bytes are appended to `out`; the block may use at most
    /// `max_len` bytes. Reserves the capacity up front so no point reallocates.
    pub fn begin_block(&mut self, out: &mut Vec<u8>, max_len: usize) {
        self.bits = BitWriter::new();
        self.block_start = out.len();
        self.block_end = out.len().saturating_add(max_len);
        out.reserve(max_len.min(1 << 20));
    }

    /// Bytes of the current block written so far.
    pub fn block_len(&self, out: &[u8]) -> usize {
        out.len().saturating_sub(self.block_start)
    }

    /// Encodes one measurement; `false` means the block is full and nothing was written.
    /// A measurement with an out-of-range ID is dropped (returns `true`); use [`Encoder::add`]
    /// to tell the two apart.
    #[inline]
    pub fn try_add(
        &mut self,
        out: &mut Vec<u8>,
        id: i32,
        timestamp: i64,
        flags: u32,
        value: f32,
    ) -> bool {
        self.add(out, id, timestamp, flags, value) != AddOutcome::Full
    }

    /// Encodes one measurement and says whether it was added, the block is full, or the ID is
    /// out of range.
    #[inline]
    pub fn add(
        &mut self,
        out: &mut Vec<u8>,
        id: i32,
        timestamp: i64,
        flags: u32,
        value: f32,
    ) -> AddOutcome {
        if self.block_end.saturating_sub(out.len()) < BLOCK_RESERVE {
            return AddOutcome::Full;
        }
        let Some(cur) = self.points.index_of(id) else {
            return AddOutcome::IdOutOfRange;
        };
        // The current point's history is copied out so that the codes can be written with
        // lastPoint's table even when lastPoint *is* the current point.
        let Some(p) = self.points.all.get(cur) else {
            return AddOutcome::IdOutOfRange;
        };
        let (q1, q2, v1, v2, v3) = (p.q1, p.q2, p.v1, p.v2, p.v3);
        let Some(last) = self.points.all.get_mut(self.last) else {
            return AddOutcome::IdOutOfRange;
        };
        let bits = &mut self.bits;

        if last.prev_next != id {
            let x = (id ^ last.prev_next) as u32;
            let class = xor_class(x, false);
            last.table.write(bits, out, point_id_code(class));
            write_xor(bits, out, x, class);
            last.prev_next = id;
        }

        if self.time.prev1 != timestamp {
            let code = self.time.code_for(timestamp);
            last.table.write(bits, out, code);
            if code == TIME_XOR_7BIT {
                varint::put_u64(out, (timestamp ^ self.time.prev1) as u64);
            }
            self.time.advance(timestamp);
        }

        let (nq1, nq2) = if q1 != flags {
            if flags == q2 {
                last.table.write(bits, out, QUALITY2);
            } else {
                last.table.write(bits, out, QUALITY_7BIT32);
                varint::put_u32(out, flags);
            }
            (flags, q1)
        } else {
            (q1, q2)
        };

        let v = value.to_bits();
        let (nv1, nv2, nv3) = if v == v1 {
            last.table.write(bits, out, VALUE1);
            (v1, v2, v3)
        } else if v == v2 {
            last.table.write(bits, out, VALUE2);
            (v, v1, v3)
        } else if v == v3 {
            last.table.write(bits, out, VALUE3);
            (v, v1, v2)
        } else if v == 0 {
            last.table.write(bits, out, VALUE_ZERO);
            (0, v1, v2)
        } else {
            let x = v ^ v1;
            let class = xor_class(x, true);
            last.table.write(bits, out, VALUE_XOR4 - 1 + class);
            write_xor(bits, out, x, class);
            (v, v1, v2)
        };

        if let Some(p) = self.points.all.get_mut(cur) {
            p.q1 = nq1;
            p.q2 = nq2;
            p.v1 = nv1;
            p.v2 = nv2;
            p.v3 = nv3;
        }
        self.last = cur;
        AddOutcome::Added
    }

    /// Ends the block: when bits are pending, writes EndOfStream with lastPoint's table and pads
    /// the last slot with zero bits; with no pending bits the block simply ends (no
    /// EndOfStream). Returns the block's stream length.
    pub fn finish_block(&mut self, out: &mut Vec<u8>) -> usize {
        if self.bits.pending() {
            if let Some(last) = self.points.all.get_mut(self.last) {
                last.table.write(&mut self.bits, out, END_OF_STREAM);
            }
            self.bits.pad(out);
        }
        self.bits = BitWriter::new();
        let len = out.len().saturating_sub(self.block_start);
        self.block_start = out.len();
        self.block_end = out.len();
        len
    }
}
