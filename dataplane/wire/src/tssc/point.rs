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
/// `stats` counts codes since the last adaptation. It never exceeds 101 (the longest period
/// between adaptations), so `u8` suffices and keeps a whole [`Point`] within one cache line.
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    stats: [u8; 32],
    since_change: u8,
    startup: u8,
    mode: u8,
    m21: u8,
    m31: u8,
    m301: u8,
    m41: u8,
    m401: u8,
    m4001: u8,
}

impl CodeTable {
    /// The initial table: mode 4 with Value1/Value2/Value3 as the short codes.
    pub(crate) const fn new() -> Self {
        Self {
            stats: [0; 32],
            since_change: 0,
            startup: 0,
            mode: 4,
            m21: 0,
            m31: 0,
            m301: 0,
            m41: 20,
            m401: 21,
            m4001: 22,
        }
    }

    /// Emits `code` (0..=31) with the current table, then updates the statistics.
    #[inline(always)]
    pub(crate) fn write(&mut self, w: &mut BitWriter, out: &mut Vec<u8>, code: u8) {
        let c = u32::from(code);
        match self.mode {
            1 => w.write(out, c, 5),
            2 => {
                if code == self.m21 {
                    w.write(out, 1, 1);
                } else {
                    w.write(out, c, 6); // `0` + 5-bit code
                }
            }
            3 => {
                if code == self.m31 {
                    w.write(out, 1, 1);
                } else if code == self.m301 {
                    w.write(out, 1, 2); // `01`
                } else {
                    w.write(out, c, 7); // `00` + code
                }
            }
            _ => {
                if code == self.m41 {
                    w.write(out, 1, 1);
                } else if code == self.m401 {
                    w.write(out, 1, 2); // `01`
                } else if code == self.m4001 {
                    w.write(out, 1, 3); // `001`
                } else {
                    w.write(out, c, 8); // `000` + code
                }
            }
        }
        self.update(code);
    }

    /// Reads one code with the current table, then updates the statistics.
    #[inline(always)]
    pub(crate) fn read(&mut self, r: &mut BitReader<'_>) -> Result<u8, DecodeError> {
        let code = match self.mode {
            1 => r.bits(5)? as u8,
            2 => {
                if r.bit()? == 1 {
                    self.m21
                } else {
                    r.bits(5)? as u8
                }
            }
            3 => {
                if r.bit()? == 1 {
                    self.m31
                } else if r.bit()? == 1 {
                    self.m301
                } else {
                    r.bits(5)? as u8
                }
            }
            _ => {
                if r.bit()? == 1 {
                    self.m41
                } else if r.bit()? == 1 {
                    self.m401
                } else if r.bit()? == 1 {
                    self.m4001
                } else {
                    r.bits(5)? as u8
                }
            }
        };
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
        match self.startup {
            0 if self.since_change > 5 => {
                self.startup = 1;
                self.adapt();
            }
            1 if self.since_change > 20 => {
                self.startup = 2;
                self.adapt();
            }
            2 if self.since_change > 100 => self.adapt(),
            _ => {}
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
        if s1 == min {
            self.mode = 1;
        } else if s2 == min {
            self.mode = 2;
            self.m21 = c1;
        } else if s3 == min {
            self.mode = 3;
            self.m31 = c1;
            self.m301 = c2;
        } else {
            self.mode = 4;
            self.m41 = c1;
            self.m401 = c2;
            self.m4001 = c3;
        }
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
    pub(crate) const fn new(prev_next: i32) -> Self {
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
        assert_eq!((t.mode, t.m21, t.startup), (2, 25, 1));
        let mut r_table = CodeTable::new();
        w.pad(&mut out);
        let mut r = BitReader::new(&out);
        for _ in 0..6 {
            assert_eq!(r_table.read(&mut r).unwrap(), 25);
        }
        assert_eq!((r_table.mode, r_table.m21), (2, 25));
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
