//! Session-wide timestamp prediction of TSSC (wire.md §4.2, encoder "Timestamp change").
//!
//! The session remembers the last two timestamps and the four smallest distinct absolute
//! deltas seen so far, so a steady frame rate codes as a single `TimeDelta1Fwd` code. All
//! arithmetic wraps like the C++ reference: the first delta is `0 + i64::MAX`-based and
//! timestamps may carry the leap-second bits, so overflow is normal, not an error.

use super::codes::{TIMESTAMP2, TIME_DELTA1_FWD, TIME_DELTA1_REV, TIME_XOR_7BIT};

/// Previous timestamps and the sorted delta cache (`d[0] <= d[1] <= d[2] <= d[3]`).
#[derive(Debug, Clone)]
pub(crate) struct TimeState {
    pub(crate) prev1: i64,
    pub(crate) prev2: i64,
    pub(crate) d: [i64; 4],
}

impl TimeState {
    /// `prevTs1 = prevTs2 = 0`, all deltas `i64::MAX`.
    pub(crate) const fn new() -> Self {
        Self {
            prev1: 0,
            prev2: 0,
            d: [i64::MAX; 4],
        }
    }

    /// The code for a timestamp that differs from `prev1`.
    #[inline(always)]
    pub(crate) fn code_for(&self, ts: i64) -> u8 {
        if ts == self.prev2 {
            return TIMESTAMP2;
        }
        let [d1, d2, d3, d4] = self.d;
        let p = self.prev1;
        if p < ts {
            if ts == p.wrapping_add(d1) {
                TIME_DELTA1_FWD
            } else if ts == p.wrapping_add(d2) {
                TIME_DELTA1_FWD + 1
            } else if ts == p.wrapping_add(d3) {
                TIME_DELTA1_FWD + 2
            } else if ts == p.wrapping_add(d4) {
                TIME_DELTA1_FWD + 3
            } else {
                TIME_XOR_7BIT
            }
        } else if ts == p.wrapping_sub(d1) {
            TIME_DELTA1_REV
        } else if ts == p.wrapping_sub(d2) {
            TIME_DELTA1_REV + 1
        } else if ts == p.wrapping_sub(d3) {
            TIME_DELTA1_REV + 2
        } else if ts == p.wrapping_sub(d4) {
            TIME_DELTA1_REV + 3
        } else {
            TIME_XOR_7BIT
        }
    }

    /// The timestamp a delta code (8..=16) stands for. Code 17 is handled by the caller.
    #[inline(always)]
    pub(crate) fn predicted(&self, code: u8) -> i64 {
        let [d1, d2, d3, d4] = self.d;
        let p = self.prev1;
        match code {
            8 => p.wrapping_add(d1),
            9 => p.wrapping_add(d2),
            10 => p.wrapping_add(d3),
            11 => p.wrapping_add(d4),
            12 => p.wrapping_sub(d1),
            13 => p.wrapping_sub(d2),
            14 => p.wrapping_sub(d3),
            15 => p.wrapping_sub(d4),
            _ => self.prev2,
        }
    }

    /// Records `ts` as the new previous timestamp and keeps the four smallest distinct deltas.
    #[inline(always)]
    pub(crate) fn advance(&mut self, ts: i64) {
        let m = self.prev1.wrapping_sub(ts).wrapping_abs();
        let [d1, d2, d3, d4] = self.d;
        if m < d4 && m != d1 && m != d2 && m != d3 {
            self.d = if m < d1 {
                [m, d1, d2, d3]
            } else if m < d2 {
                [d1, m, d2, d3]
            } else if m < d3 {
                [d1, d2, m, d3]
            } else {
                [d1, d2, d3, m]
            };
        }
        self.prev2 = self.prev1;
        self.prev1 = ts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_becomes_delta1() {
        let mut t = TimeState::new();
        let t0 = 638_000_000_000_000_000i64;
        assert_eq!(t.code_for(t0), TIME_XOR_7BIT);
        t.advance(t0);
        assert_eq!(t.code_for(t0 + 333_333), TIME_XOR_7BIT);
        t.advance(t0 + 333_333);
        assert_eq!(t.code_for(t0 + 666_666), TIME_DELTA1_FWD);
        assert_eq!(t.code_for(t0), TIMESTAMP2);
        assert_eq!(t.predicted(TIME_DELTA1_FWD), t0 + 666_666);
        assert_eq!(t.code_for(333_333), TIME_DELTA1_REV + 1);
    }

    #[test]
    fn extreme_deltas_wrap() {
        let mut t = TimeState::new();
        t.advance(i64::MIN);
        t.advance(i64::MAX);
        t.advance(0);
        assert_eq!(t.prev1, 0);
    }
}
