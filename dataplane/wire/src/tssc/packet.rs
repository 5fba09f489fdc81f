//! TSSC DataPacket payloads (wire.md §4.2 packet layout and "Rules"):
//! `u8 flags (0x08 | extra)`, `i32 BE count`, `u8 version = 85`, `u16 BE sequence`, stream.
//!
//! The sequence number is what lets a subscriber notice that its decoder state no longer
//! matches the publisher's: sequence 0 always means "fresh encoder", every other packet must be
//! exactly the expected successor, otherwise it is dropped until the next reset.

use super::decoder::Decoder;
use super::encoder::{AddOutcome, Encoder};
use super::{next_sequence, DEFAULT_MAX_ID, VERSION};
use crate::cursor::{DecodeError, Reader};
use crate::measurement::Measurement;
use crate::packet::flags;

/// Bytes before the TSSC stream: flags, count, version, sequence.
pub const HEADER_LEN: usize = 8;

/// Offset of the count field from the packet start.
const COUNT_AT: usize = 1;

/// Publisher side: builds whole TSSC DataPacket payloads with one persistent encoder session.
///
/// Call order per packet: [`begin`](Self::begin), any number of [`try_add`](Self::try_add)
/// until it returns `false`, [`finish`](Self::finish). Call [`reset`](Self::reset) whenever a
/// new signal index cache takes effect.
#[derive(Debug, Clone)]
pub struct PacketEncoder {
    encoder: Encoder,
    sequence: u16,
    start: usize,
    count: u32,
    open: bool,
}

impl Default for PacketEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketEncoder {
    /// A fresh session; the first packet gets sequence 0.
    pub fn new() -> Self {
        Self::with_max_id(DEFAULT_MAX_ID)
    }

    /// A fresh session whose encoder accepts runtime IDs `0..=max_id`.
    pub fn with_max_id(max_id: i32) -> Self {
        Self {
            encoder: Encoder::with_max_id(max_id),
            sequence: 0,
            start: 0,
            count: 0,
            open: false,
        }
    }

    /// Fresh encoder state; the next packet gets sequence 0, which resets the subscriber.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The sequence number the next finished packet carries.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// Appends flags (`extra_flags | 0x08`, Compact bit cleared), a count placeholder, the
    /// version and the sequence, and begins the block so that the whole payload written by this
    /// packet stays within `max_payload` bytes. With `max_payload < 108` no point fits.
    pub fn begin(&mut self, out: &mut Vec<u8>, extra_flags: u8, max_payload: usize) {
        self.start = out.len();
        self.count = 0;
        self.open = true;
        out.push((extra_flags & !flags::COMPACT) | flags::COMPRESSED);
        out.extend_from_slice(&[0, 0, 0, 0, VERSION]);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        self.encoder
            .begin_block(out, max_payload.saturating_sub(HEADER_LEN));
    }

    /// Adds one measurement; `false` when the packet is full (nothing written). Measurements
    /// whose ID the encoder cannot table (negative or above `max_id`) are skipped and not
    /// counted.
    #[inline]
    pub fn try_add(&mut self, out: &mut Vec<u8>, m: &Measurement) -> bool {
        match self
            .encoder
            .add(out, m.runtime_id, m.timestamp, m.flags, m.value)
        {
            AddOutcome::Added => {
                self.count += 1;
                true
            }
            AddOutcome::IdOutOfRange => true,
            AddOutcome::Full => false,
        }
    }

    /// Measurements added to the open packet so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Finishes the block, patches the count and advances the sequence; returns the count.
    ///
    /// A packet with no measurement is removed from `out` again and does not consume a sequence
    /// number, so a caller that drops empty packets cannot desynchronise the subscriber.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u32 {
        if !self.open {
            return 0;
        }
        self.open = false;
        self.encoder.finish_block(out);
        if self.count == 0 {
            out.truncate(self.start);
            return 0;
        }
        let count = self.count.to_be_bytes();
        let at = self.start + COUNT_AT;
        if let Some(dst) = out.get_mut(at..at + 4) {
            dst.copy_from_slice(&count);
        }
        self.sequence = next_sequence(self.sequence);
        self.count
    }
}

/// What [`PacketDecoder::decode`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketOutcome {
    /// The packet was in sequence and its measurements were appended.
    Decoded,
    /// The packet was not the expected one; nothing was decoded. Packets are dropped until a
    /// reset (sequence 0) arrives.
    OutOfSequence {
        /// The sequence number that would have been accepted (0 = waiting for a reset).
        expected: u16,
        /// The sequence number the packet carried.
        got: u16,
    },
}

/// Subscriber side, one per signal-index-cache slot: checks the version, enforces the sequence
/// and recreates the decoder on sequence 0 (wire.md §4.2 "Subscriber decoder lifecycle").
#[derive(Debug, Clone)]
pub struct PacketDecoder {
    decoder: Decoder,
    max_id: i32,
    /// Next acceptable sequence; 0 means only a reset is acceptable.
    expected: u16,
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketDecoder {
    /// A decoder for a new cache slot: it waits for sequence 0.
    pub fn new() -> Self {
        Self::with_max_id(DEFAULT_MAX_ID)
    }

    /// Like [`new`](Self::new) with IDs bounded to `0..=max_id`.
    pub fn with_max_id(max_id: i32) -> Self {
        Self {
            decoder: Decoder::with_max_id(max_id),
            max_id,
            expected: 0,
        }
    }

    /// The sequence number the next packet must carry (0: waiting for a reset).
    pub fn expected(&self) -> u16 {
        self.expected
    }

    /// Decodes a packet `body`: the DataPacket payload after flags and count, starting at the
    /// version byte. A wrong version is an error. On a stream error nothing is appended and the
    /// decoder waits for a reset, since its state no longer matches the encoder's.
    pub fn decode(
        &mut self,
        body: &[u8],
        out: &mut Vec<Measurement>,
    ) -> Result<PacketOutcome, DecodeError> {
        let mut r = Reader::new(body);
        let version = r.u8("tssc version")?;
        if version != VERSION {
            return Err(DecodeError::invalid("tssc version", 0));
        }
        let got = r.u16("tssc sequence")?;
        if got == 0 {
            self.decoder = Decoder::with_max_id(self.max_id);
        } else if got != self.expected || self.expected == 0 {
            return Ok(PacketOutcome::OutOfSequence {
                expected: self.expected,
                got,
            });
        }
        match self.decoder.decode_block(r.rest(), out) {
            Ok(()) => {
                self.expected = next_sequence(got);
                Ok(PacketOutcome::Decoded)
            }
            Err(e) => {
                self.expected = 0;
                Err(e)
            }
        }
    }
}
