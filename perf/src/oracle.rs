//! The self-checking synthetic source (test-plan §2.1): signal `i` has a GUID that encodes `i`,
//! and its value at timestamp `t` is a keyed hash of `(i, t)`, so a receiver checks content,
//! order and authorisation of every point with no side channel.

use uuid::Uuid;

/// High 96 bits of every synthetic signal GUID; the low 32 bits are the signal number.
const GUID_PREFIX: u128 = 0x5e7f_0000_2664_4000_8000_0000_0000_0000;
/// Mask of the signal number inside the GUID.
const INDEX_MASK: u128 = 0xFFFF_FFFF;
/// Key of the value hash; a receiver with another key would reject every point.
pub const KEY: u64 = 0x2664_5717_0c0f_fee5;

/// GUID of synthetic signal `i`.
pub fn signal_guid(i: u32) -> Uuid {
    Uuid::from_u128(GUID_PREFIX | u128::from(i))
}

/// Signal number of a synthetic GUID, or None for a GUID this source never published.
pub fn signal_index(id: &Uuid) -> Option<u32> {
    let v = id.as_u128();
    (v & !INDEX_MASK == GUID_PREFIX).then_some((v & INDEX_MASK) as u32)
}

/// splitmix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Value of signal `i` at timestamp `t` (raw ticks).
///
/// `60 + k/256` with `k` the low 8 bits of the hash: exact in f32 (so compact and TSSC carry it
/// unchanged), frequency-like so TSSC compresses it as it would real data, and a wrong value is
/// still caught with probability 255/256 per point, i.e. certainly over any real run.
pub fn value(i: u32, t: i64) -> f32 {
    let h = mix(KEY ^ mix(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ t as u64));
    60.0 + (h & 0xFF) as f32 / 256.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trips_and_rejects_foreign_ids() {
        for i in [0, 1, 999, 65_535, u32::MAX] {
            assert_eq!(signal_index(&signal_guid(i)), Some(i));
        }
        assert_eq!(signal_index(&Uuid::nil()), None);
        assert_eq!(signal_index(&Uuid::from_u128(0x1234)), None);
    }

    #[test]
    fn values_depend_on_signal_and_time_and_are_exact() {
        let mut distinct = std::collections::HashSet::new();
        for i in 0..64u32 {
            for t in 0..64i64 {
                let v = value(i, 1_000_000 + t);
                assert!((60.0..61.0).contains(&v));
                // Exact in f32: the fraction is a multiple of 1/256.
                assert_eq!(((v - 60.0) * 256.0).fract(), 0.0);
                distinct.insert(v.to_bits());
            }
        }
        // 4096 samples over 256 levels: all levels are hit.
        assert_eq!(distinct.len(), 256);
        assert_ne!(
            (0..32).map(|t| value(7, t)).collect::<Vec<_>>(),
            (0..32).map(|t| value(8, t)).collect::<Vec<_>>()
        );
    }
}
