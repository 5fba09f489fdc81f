//! TSSC, the Time-Series Special Compression of STTP data packets (wire.md §4.2).
//!
//! TSSC is a stateful, per-session compressor: the encoder and the decoder keep identical
//! models (per-signal value/flag history, session timestamp deltas, adaptive prefix-code tables)
//! and transmit only what the model does not predict. Its state spans packets, so it needs an
//! ordered, lossless transport (TCP) and a sequence number to detect desynchronisation.
//!
//! - [`Encoder`] / [`Decoder`]: the bare block codec.
//! - [`PacketEncoder`] / [`PacketDecoder`]: whole DataPacket payloads with version byte,
//!   sequence numbers and the reset rules.
//!
//! Files: `codes` (code words), `bits` (bit/byte interleaving), `varint`, `point` (per-signal
//! state and adaptive code table), `time` (timestamp prediction), `encoder`, `decoder`, `packet`.

mod bits;
mod codes;
mod decoder;
mod encoder;
mod packet;
mod point;
mod time;
mod varint;

pub use decoder::Decoder;
pub use encoder::{AddOutcome, Encoder, BLOCK_RESERVE};
pub use packet::{PacketDecoder, PacketEncoder, PacketOutcome, HEADER_LEN};

/// The TSSC version byte that follows flags and count; anything else is an error.
pub const VERSION: u8 = 85;

/// Default bound on runtime IDs for the per-ID point tables.
pub const DEFAULT_MAX_ID: i32 = 1 << 20;

/// The sequence number after `seq`: +1, and 65535 wraps to 1 because 0 means "reset".
#[inline]
pub const fn next_sequence(seq: u16) -> u16 {
    if seq == u16::MAX {
        1
    } else {
        seq + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_skips_zero() {
        assert_eq!(next_sequence(0), 1);
        assert_eq!(next_sequence(41), 42);
        assert_eq!(next_sequence(u16::MAX), 1);
    }
}
