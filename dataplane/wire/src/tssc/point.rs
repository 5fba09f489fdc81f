//! Per-signal TSSC state: value and flag history plus the adaptive code table
//! (wire.md §4.2 "`Point` fields" and "Adaptive code emission").
//!
//! Every code of a measurement is written and read with the table of the *previous*
//! measurement's point ("lastPoint"), so the table models "what usually follows signal X".
//! Encoder and decoder run the same statistics update after every code, which keeps the two
//! tables identical without ever transmitting them.

use super::bits::{BitReader, BitWriter};
use crate::cursor::DecodeError;

/// The adaptive prefix code of one point.
///
/// A table in mode `m` has `m − 1` *short* codes coded as `1`, `01`, `001` and sends every
/// other code as `m − 1` zero bits followed by the 5-bit code. Here that is kept as
/// `shorts`/`prefix` (for reading) plus a per-code length table `len_of` (for writing without
/// branching on the mode), both recomputed only when the table adapts.
///
/// `stats` counts codes since the last adaptation. It never exceeds 101 (the longest period
/// between adaptations), so `u8` suffices and keeps a [`Point`] small.
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    stats: [u8; 32],
    /// Bits emitted for each code; a short code is the value 1 in that many bits, any other
    /// code is its own value in that many bits.
    len_of: [u8; 32],
    /// The short codes in priority order; only the first `prefix` are meaningful.
    shorts: [u8; 3],
    /// Mode − 1: the number of short codes and of leading zeros before a 5-bit code.
    prefix: u8,
    since_change: u8,
    /// `since_change` value at which the next adaptation happens: 6, then 21, then every 101.
    adapt_at: u8,
}

impl CodeTable {
    /// The initial table: mode 4 with Value1/Value2/Value3 as the short codes.
    pub(crate) fn new() -> Self {
        let mut t = Self {
            stats: [0; 32],
            len_of: [0; 32],
            shorts: [20, 21, 22],
            prefix: 3,
            since_change: 0,
            adapt_at: 6,
        };
        t.fill_lengths();
        t
    }

    /// The mode (1..=4) of wire.md's description.
    #[cfg(test)]
    pub(crate) fn mode(&self) -> u8 {
        self.prefix + 1
    }

    /// Rebuilds `len_of` from `shorts`/`prefix`. Short codes are assigned from the last to the
    /// first so that, should two coincide, the earlier (shorter) one wins as in the reference's
    /// `if code == m41 … else if code == m401 …` order.
    fn fill_lengths(&mut self) {
        self.len_of = [5 + self.prefix; 32];
        for k in (0..usize::from(self.prefix)).rev() {
            if let (Some(&code), Some(len)) = (self.shorts.get(k), u8::try_from(k + 1).ok()) {
                if let Some(slot) = self.len_of.get_mut(usize::from(code & 31)) {
                    *slot = len;
                }
            }
        }
    }

    /// Emits `code` (0..=31) with the current table, then updates the statistics.
    #[inline(always)]
    pub(crate) fn write(&mut self, w: &mut BitWriter, out: &mut Vec<u8>, code: u8) {
        let len = self
            .len_of
            .get(usize::from(code & 31))
            .copied()
            .unwrap_or(8);
        let bits = if len <= 3 { 1 } else { u32::from(code) };
        w.write(out, bits, u32::from(len));
        self.update(code);
    }

    /// Reads one code with the current table, then updates the statistics.
    #[inline(always)]
    pub(crate) fn read(&mut self, r: &mut BitReader<'_>) -> Result<u8, DecodeError> {
        let code = r.code(&self.shorts, self.prefix)?;
        self.update(code);
        Ok(code)
    }

    /// Counts `code` and adapts after 6, then 21, then every 101 codes.
    #[inline(always)]
    fn update(&mut self, code: u8) {
        self.since_change = self.since_change.wrapping_add(1);
        if let Some(n) = self.stats.get_mut(usize::from(code & 31)) {
            *n = n.wrapping_add(1);
        }
        if self.since_change >= self.adapt_at {
            self.adapt_at = if self.adapt_at == 6 { 21 } else { 101 };
            self.adapt();
        }
    }

    /// Picks the prefix mode that would have coded the last period's codes in the fewest bits
    /// (ties go to the lower mode) and makes the most frequent codes the short ones.
    #[cold]
    #[inline(never)]
    fn adapt(&mut self) {
        let (mut c1, mut n1) = (0u8, 0u32);
        let (mut c2, mut n2) = (1u8, 0u32);
        let (mut c3, mut n3) = (2u8, 0u32);
        let mut total = 0u32;
        for (i, slot) in (0u8..).zip(self.stats.iter_mut()) {
            let n = u32::from(*slot);
            *slot = 0;
            total += n;
            if n > n3 {
                if n > n1 {
                    (c3, n3) = (c2, n2);
                    (c2, n2) = (c1, n1);
                    (c1, n1) = (i, n);
                } else if n > n2 {
                    (c3, n3) = (c2, n2);
                    (c2, n2) = (i, n);
                } else {
                    (c3, n3) = (i, n);
                }
            }
        }
        let s1 = 5 * total;
        let s2 = n1 + 6 * (total - n1);
        let s3 = n1 + 2 * n2 + 7 * (total - n1 - n2);
        let s4 = n1 + 2 * n2 + 3 * n3 + 8 * (total - n1 - n2 - n3);
        let min = s1.min(s2).min(s3).min(s4);
        // Every mode sets all the short codes it uses (the reference's m21 / m31, m301 /
        // m41, m401, m4001), so unused slots never reach the wire.
        if s1 == min {
            self.prefix = 0;
        } else if s2 == min {
            self.prefix = 1;
            self.shorts = [c1, 0, 0];
        } else if s3 == min {
            self.prefix = 2;
            self.shorts = [c1, c2, 0];
        } else {
            self.prefix = 3;
            self.shorts = [c1, c2, c3];
        }
        self.fill_lengths();
        self.since_change = 0;
    }
}

/// One signal's TSSC state. Created on first use with `prev_next = id + 1`, which makes a
/// strictly ascending ID sequence cost no PointID codes at all.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    /// The ID predicted to follow this point (`prevNextPointId`).
    pub(crate) prev_next: i32,
    /// Last two state-flag words.
    pub(crate) q1: u32,
    pub(crate) q2: u32,
    /// Last three raw `f32` bit patterns.
    pub(crate) v1: u32,
    pub(crate) v2: u32,
    pub(crate) v3: u32,
    /// The code table used for the measurement that *follows* this point.
    pub(crate) table: CodeTable,
}

impl Point {
    /// A fresh point whose predicted successor is `prev_next`.
    pub(crate) fn new(prev_next: i32) -> Self {
        Self {
            prev_next,
            q1: 0,
            q2: 0,
            v1: 0,
            v2: 0,
            v3: 0,
            table: CodeTable::new(),
        }
    }
}

/// The points of a session: index 0 is the initial "lastPoint" (not a signal, `prev_next = 0`),
/// signal `id` lives at index `id + 1`. Entries are created up to the highest ID seen, each as
/// `Point::new(id + 1)` — exactly what the reference creates lazily on first use.
#[derive(Debug, Clone)]
pub(crate) struct Points {
    pub(crate) all: Vec<Point>,
    max_id: i32,
}

impl Points {
    /// A table that accepts IDs in `0..=max_id`.
    pub(crate) fn new(max_id: i32) -> Self {
        Self {
            all: vec![Point::new(0)],
            max_id: max_id.max(0),
        }
    }

    /// The table index of `id`, growing the table if needed; `None` when `id` is out of range.
    #[inline(always)]
    pub(crate) fn index_of(&mut self, id: i32) -> Option<usize> {
        if id < 0 || id > self.max_id {
            return None;
        }
        let index = id as usize + 1;
        if index >= self.all.len() {
            self.grow(index);
        }
        Some(index)
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, index: usize) {
        let from = self.all.len();
        self.all
            .extend((from..=index).map(|i| Point::new(i as i32)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptation_schedule_and_modes() {
        let mut t = CodeTable::new();
        let mut w = BitWriter::new();
        let mut out = Vec::new();
        // Six identical codes: modes 2, 3 and 4 would all need 6 bits, mode 1 30; ties go to
        // the lower mode.
        for _ in 0..6 {
            t.write(&mut w, &mut out, 25);
        }
        assert_eq!((t.mode(), t.shorts[0]), (2, 25));
        let mut r_table = CodeTable::new();
        w.pad(&mut out);
        let mut r = BitReader::new(&out);
        for _ in 0..6 {
            assert_eq!(r_table.read(&mut r).unwrap(), 25);
        }
        assert_eq!((r_table.mode(), r_table.shorts[0]), (2, 25));
    }

    #[test]
    fn points_grow_with_reference_initial_state() {
        let mut p = Points::new(10);
        assert_eq!(p.index_of(3), Some(4));
        assert_eq!(p.all.len(), 5);
        assert_eq!(p.all[0].prev_next, 0);
        assert_eq!(p.all[4].prev_next, 4);
        assert_eq!(p.index_of(11), None);
        assert_eq!(p.index_of(-1), None);
    }
}
