//! Sliding anti-replay window over per-epoch sequence numbers (IPsec ESP / DTLS style, with the
//! bitmap kept as a ring indexed by `sequence % WINDOW` as in RFC 6479, so advancing costs no
//! shifting).
//!
//! Use: [`ReplayWindow::check`] **before** authenticating a datagram (cheap rejection of
//! replays), [`ReplayWindow::accept`] only **after** it authenticated — otherwise a forged
//! datagram with a huge sequence could slide the window and lock out the real sender.

/// Sequence numbers tracked behind the highest accepted one (test-plan T10 asks for ≥ 64; a
/// larger window tolerates the reordering of a batched GSO send and multi-path routing).
pub const WINDOW: u64 = 1024;
const WORD_BITS: u64 = 64;
const WORDS: usize = (WINDOW / WORD_BITS) as usize;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already accepted once.
    Replayed,
    /// At least [`WINDOW`] behind the highest accepted sequence: it can no longer be checked.
    TooOld,
}

/// The window: the highest accepted sequence and a bitmap of the [`WINDOW`] sequences ending
/// at it. Bit `s % WINDOW` is set when `s` (within the window) was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    bits: [u64; WORDS],
    /// Highest accepted sequence; `None` before the first.
    top: Option<u64>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every sequence is acceptable.
    pub const fn new() -> Self {
        Self {
            bits: [0; WORDS],
            top: None,
        }
    }

    /// The highest accepted sequence, if any.
    pub const fn highest(&self) -> Option<u64> {
        self.top
    }

    /// Whether `seq` may still be accepted. Does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        let Some(top) = self.top else {
            return Ok(());
        };
        if seq > top {
            return Ok(());
        }
        if top - seq >= WINDOW {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            Err(ReplayError::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `seq` as accepted, sliding the window forward when it is the new highest.
    /// Idempotent; a sequence too old to track is ignored (call [`Self::check`] first).
    pub fn accept(&mut self, seq: u64) {
        match self.top {
            None => {
                self.bits = [0; WORDS];
                self.top = Some(seq);
            }
            Some(top) if seq > top => {
                self.clear_after(top, seq - top);
                self.top = Some(seq);
            }
            Some(top) if top - seq >= WINDOW => return,
            Some(_) => {}
        }
        self.set_bit(seq);
    }

    fn slot(seq: u64) -> (usize, u64) {
        let pos = seq % WINDOW;
        ((pos / WORD_BITS) as usize, 1u64 << (pos % WORD_BITS))
    }

    fn bit(&self, seq: u64) -> bool {
        let (word, mask) = Self::slot(seq);
        self.bits.get(word).is_some_and(|w| w & mask != 0)
    }

    fn set_bit(&mut self, seq: u64) {
        let (word, mask) = Self::slot(seq);
        if let Some(w) = self.bits.get_mut(word) {
            *w |= mask;
        }
    }

    /// Clears the bits of the `count` sequences after `top`: they enter the window unseen.
    fn clear_after(&mut self, top: u64, count: u64) {
        if count >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let mut pos = (top % WINDOW + 1) % WINDOW;
        let mut left = count;
        while left > 0 {
            let word = (pos / WORD_BITS) as usize;
            let offset = pos % WORD_BITS;
            let Some(w) = self.bits.get_mut(word) else {
                return;
            };
            if offset == 0 && left >= WORD_BITS {
                *w = 0;
                left -= WORD_BITS;
                pos = (pos + WORD_BITS) % WINDOW;
            } else {
                *w &= !(1u64 << offset);
                left -= 1;
                pos = (pos + 1) % WINDOW;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(5), Ok(()));
        w.accept(5);
        assert_eq!(w.check(5), Err(ReplayError::Replayed));
        assert_eq!(w.check(4), Ok(()));
        w.accept(4);
        assert_eq!(w.check(4), Err(ReplayError::Replayed));
        w.accept(5 + WINDOW);
        assert_eq!(w.check(5), Err(ReplayError::TooOld));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.check(5 + WINDOW), Err(ReplayError::Replayed));
        // A slot reused by the ring must have been cleared when the window slid over it.
        w.accept(4 + 2 * WINDOW);
        assert_eq!(w.check(4 + 2 * WINDOW - 1), Ok(()));
        assert_eq!(w.check(5 + WINDOW), Err(ReplayError::Replayed));
        assert_eq!(w.check(4 + WINDOW), Err(ReplayError::TooOld));
        assert_eq!(w.highest(), Some(4 + 2 * WINDOW));
    }

    #[test]
    fn top_of_range() {
        let mut w = ReplayWindow::new();
        w.accept(u64::MAX - 1);
        assert_eq!(w.check(u64::MAX), Ok(()));
        w.accept(u64::MAX);
        assert_eq!(w.check(u64::MAX), Err(ReplayError::Replayed));
        assert_eq!(w.check(u64::MAX - 1), Err(ReplayError::Replayed));
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
    }
}
