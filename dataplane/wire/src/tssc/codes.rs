//! The 5-bit TSSC code words (wire.md §4.2 "Code words"). The draft specification numbers them
//! differently; these are the values the reference implementations put on the wire.

/// End of the block; the rest of the current bit byte is padding.
pub(crate) const END_OF_STREAM: u8 = 0;
/// Last PointID XOR code (`PointIDXOR32`).
pub(crate) const POINT_ID_XOR32: u8 = 7;
/// `TimeDelta1Forward`; 8..=11 add delta 1..4 to the previous timestamp.
pub(crate) const TIME_DELTA1_FWD: u8 = 8;
/// `TimeDelta1Reverse`; 12..=15 subtract delta 1..4.
pub(crate) const TIME_DELTA1_REV: u8 = 12;
/// The timestamp equals the one before the previous.
pub(crate) const TIMESTAMP2: u8 = 16;
/// The timestamp is the previous one XOR a varint64.
pub(crate) const TIME_XOR_7BIT: u8 = 17;
/// The flags equal the point's flags before the previous ones.
pub(crate) const QUALITY2: u8 = 18;
/// The flags follow as a varint32.
pub(crate) const QUALITY_7BIT32: u8 = 19;
/// The value equals the point's previous value.
pub(crate) const VALUE1: u8 = 20;
/// The value equals the point's second previous value.
pub(crate) const VALUE2: u8 = 21;
/// The value equals the point's third previous value.
pub(crate) const VALUE3: u8 = 22;
/// The value is +0.0 (bits 0).
pub(crate) const VALUE_ZERO: u8 = 23;
/// First value XOR code (`ValueXOR4`); 24..=31 carry 4, 8, …, 28, 32 bits.
pub(crate) const VALUE_XOR4: u8 = 24;

/// Size class of an XOR payload, shared by PointID (codes 1..=7) and value (24..=31) changes.
///
/// Class `k` in 1..=8 carries `4·k` bits: odd classes start with a 4-bit nibble in the bit stream
/// followed by `(k-1)/2` whole bytes of `x >> 4`; even classes are `k/2` whole bytes of `x`. All
/// bytes are little-endian and go to the byte position, not the bit stream. PointIDs have no
/// 28-bit class: anything above 24 bits uses class 8.
#[inline(always)]
pub(crate) const fn xor_class(x: u32, allow_28: bool) -> u8 {
    // Nibbles needed, at least one: a branch-free form of the reference's size ladder.
    let nibbles = (35 - x.leading_zeros()) / 4;
    let class = if nibbles == 0 { 1 } else { nibbles as u8 };
    if class == 7 && !allow_28 {
        8
    } else {
        class
    }
}

/// The PointID XOR code for a size class (class 8 is code 7).
#[inline]
pub(crate) const fn point_id_code(class: u8) -> u8 {
    if class >= 8 {
        POINT_ID_XOR32
    } else {
        class
    }
}

/// The size class of a PointID XOR code in 1..=7.
#[inline]
pub(crate) const fn point_id_class(code: u8) -> u8 {
    if code >= POINT_ID_XOR32 {
        8
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size ladder of wire.md §4.2, written out as the reference does.
    fn ladder(x: u32, allow_28: bool) -> u8 {
        match x {
            0..=0xF => 1,
            0x10..=0xFF => 2,
            0x100..=0xFFF => 3,
            0x1000..=0xFFFF => 4,
            0x1_0000..=0xF_FFFF => 5,
            0x10_0000..=0xFF_FFFF => 6,
            0x100_0000..=0xFFF_FFFF if allow_28 => 7,
            _ => 8,
        }
    }

    #[test]
    fn class_matches_the_ladder_at_every_boundary() {
        for shift in 0..32 {
            for x in [
                (1u32 << shift) - 1,
                1 << shift,
                (1u32 << shift) + 1,
                u32::MAX >> shift,
            ] {
                for allow in [false, true] {
                    assert_eq!(
                        xor_class(x, allow),
                        ladder(x, allow),
                        "x={x:#x} allow_28={allow}"
                    );
                }
            }
        }
    }
}
