//! Incremental splitting of the command-channel TCP stream into frames (wire.md §1): every
//! message is `u32 BE frameLength` + `frameLength` body bytes, in both directions.

use crate::error::ProtoError;
use sttp_wire::frame::{PREFIX_LEN, RESPONSE_HEADER_LEN};

/// cppapi's first-frame sanity limit for a publisher, as a body length: the client's first
/// frame may not exceed 4+1+8192 bytes including the prefix, i.e. 1+8192 body bytes
/// (wire.md §1 size limits; it holds DefineOperationalModes, 5 bytes).
pub const FIRST_COMMAND_FRAME_LIMIT: usize = 1 + 8192;
/// cppapi v3's first-frame limit for a subscriber, as a body length: 6+8192 (the first response
/// is normally Succeeded(0x06) with a short message).
pub const FIRST_RESPONSE_FRAME_LIMIT: usize = RESPONSE_HEADER_LEN + 8192;

/// Splits a byte stream into frame bodies, bounded in memory.
///
/// Call order: [`FrameDecoder::push`] whatever bytes arrived, then [`FrameDecoder::next_frame`]
/// until it returns `Ok(None)`. A declared length of zero or above the limit is an error as soon
/// as the 4-byte prefix is buffered, before any body byte is awaited; the error repeats on
/// every later call, and the session should close with its text as the logged reason.
/// Limits are body lengths (the `frameLength` field), not counting the prefix.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
    first_frame_limit: Option<usize>,
    frames: u64,
}

impl FrameDecoder {
    /// A decoder accepting bodies up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_frame,
            first_frame_limit: None,
            frames: 0,
        }
    }

    /// Applies a stricter limit to the first frame only, e.g. [`FIRST_COMMAND_FRAME_LIMIT`].
    pub fn with_first_frame_limit(mut self, limit: usize) -> Self {
        self.first_frame_limit = Some(limit);
        self
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        // Reclaim consumed space before growing, so memory stays ~ one frame + one read.
        if self.start > 0 && (self.start == self.buf.len() || self.start >= self.buf.len() / 2) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The limit for the next frame.
    fn limit(&self) -> usize {
        match self.first_frame_limit {
            Some(first) if self.frames == 0 => first.min(self.max_frame),
            _ => self.max_frame,
        }
    }

    /// The next whole frame body, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some((prefix, rest)) = pending.split_first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len == 0 {
            return Err(ProtoError::EmptyFrame);
        }
        let limit = self.limit();
        if len > limit {
            return Err(ProtoError::FrameTooLarge { len, limit });
        }
        let Some(body) = rest.get(..len) else {
            return Ok(None);
        };
        let body = body.to_vec();
        self.start += PREFIX_LEN + len;
        self.frames += 1;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(body))
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Frames returned so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_waits() {
        let mut d = FrameDecoder::new(100);
        d.push(&[0, 0, 0, 2, 0xAA]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&[0xBB, 0, 0, 0, 1, 0xCC, 0]);
        assert_eq!(d.next_frame().unwrap(), Some(vec![0xAA, 0xBB]));
        assert_eq!(d.next_frame().unwrap(), Some(vec![0xCC]));
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.buffered(), 1);
    }

    #[test]
    fn limits() {
        let mut d = FrameDecoder::new(100).with_first_frame_limit(FIRST_COMMAND_FRAME_LIMIT);
        d.push(&[0, 0, 0x20, 0x02]);
        assert_eq!(
            d.next_frame(),
            Err(ProtoError::FrameTooLarge {
                len: 0x2002,
                limit: 100
            })
        );
        let mut d = FrameDecoder::new(1 << 20).with_first_frame_limit(FIRST_COMMAND_FRAME_LIMIT);
        d.push(&[0, 0, 0x20, 0x02]);
        assert_eq!(
            d.next_frame(),
            Err(ProtoError::FrameTooLarge {
                len: 0x2002,
                limit: 0x2001
            })
        );
        let mut d = FrameDecoder::new(1 << 20).with_first_frame_limit(5);
        d.push(&[0, 0, 0, 1, 6, 0, 0, 0, 9]);
        assert_eq!(d.next_frame().unwrap(), Some(vec![6]));
        assert_eq!(
            d.next_frame().unwrap(),
            None,
            "second frame uses the normal limit"
        );
        let mut d = FrameDecoder::new(10);
        d.push(&[0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(ProtoError::EmptyFrame));
        assert_eq!(d.next_frame(), Err(ProtoError::EmptyFrame));
    }
}
