//! Properties of the authenticated datagram codec (wire.md §11 extension; test-plan T9, T10):
//! round trips, tamper and truncation rejection, replay window against a set oracle, rotation
//! without loss within grace and expiry after it, and nonce uniqueness across rotations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use std::collections::{BTreeSet, HashSet};
use sttp_wire::aead::format::{field, Header};
use sttp_wire::aead::replay::WINDOW;
use sttp_wire::aead::{
    generate_key, InstallError, Keyring, OpenError, ReplayError, ReplayWindow, SealError,
    SealingKey, OVERHEAD,
};

fn seal(key: &mut SealingKey, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    key.seal_into(plaintext, &mut out).unwrap();
    out
}

/// A plausible bare DataPacket response body (wire.md §8) of `n` payload bytes.
fn response_body(n: usize, fill: u8) -> Vec<u8> {
    let mut b = vec![0x82, 0x02];
    b.extend_from_slice(&(n as i32).to_be_bytes());
    b.extend(std::iter::repeat_n(fill, n));
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(
        key in any::<[u8; 32]>(),
        epoch in any::<u32>(),
        start in 0u64..u64::MAX - 16,
        plaintexts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1600), 1..8),
        prefix in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut sealer = SealingKey::starting_at(epoch, &key, start);
        let mut ring = Keyring::new();
        ring.install(epoch, &key, 0).unwrap();
        for (i, p) in plaintexts.iter().enumerate() {
            // seal_into appends: whatever the batch buffer held stays in front.
            let mut out = prefix.clone();
            sealer.seal_into(p, &mut out).unwrap();
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            let datagram = &out[prefix.len()..];
            prop_assert_eq!(datagram.len(), p.len() + OVERHEAD);
            let header = Header::parse(datagram).unwrap();
            prop_assert_eq!(header, Header { epoch, sequence: start + i as u64 });
            let mut in_place = datagram.to_vec();
            {
                let opened = ring.open(datagram, 1).unwrap();
                prop_assert_eq!(opened.plaintext, &p[..]);
                prop_assert_eq!(opened.epoch, epoch);
                prop_assert_eq!(opened.sequence, start + i as u64);
            }
            // The same datagram again is a replay, also through the in-place path.
            prop_assert_eq!(ring.open_in_place(&mut in_place, 1).unwrap_err(), OpenError::Replayed);
        }
        prop_assert_eq!(sealer.sequence(), start + plaintexts.len() as u64);
        prop_assert_eq!(ring.stats().opened, plaintexts.len() as u64);
        prop_assert_eq!(ring.stats().replayed, plaintexts.len() as u64);
    }

    #[test]
    fn open_in_place_matches_open(key in any::<[u8; 32]>(), p in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut sealer = SealingKey::new(7, &key);
        let mut d = seal(&mut sealer, &p);
        let mut ring = Keyring::new();
        ring.install(7, &key, 0).unwrap();
        let opened = ring.open_in_place(&mut d, 0).unwrap();
        prop_assert_eq!(opened.plaintext, &p[..]);
    }

    /// Every single-bit flip anywhere is refused, for the reason its position implies, and does
    /// not poison the window for the genuine datagram.
    #[test]
    fn every_bit_flip_rejected(
        key in any::<[u8; 32]>(),
        epoch in 1u32..u32::MAX,
        seq in 0u64..1 << 40,
        len in 0usize..48,
    ) {
        let mut sealer = SealingKey::starting_at(epoch, &key, seq);
        let good = seal(&mut sealer, &response_body(len, 0x5A));
        let mut ring = Keyring::new();
        ring.install(epoch, &key, 0).unwrap();
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let byte = bit / 8;
            let expected = if byte == field::MAGIC {
                OpenError::BadVersion
            } else if field::EPOCH.contains(&byte) {
                OpenError::UnknownEpoch
            } else {
                OpenError::Authentication
            };
            prop_assert_eq!(ring.open(&bad, 0).unwrap_err(), expected, "bit {}", bit);
        }
        let flips = (good.len() * 8) as u64;
        prop_assert_eq!(ring.stats().rejected(), flips);
        prop_assert_eq!(ring.stats().bad_version, 8);
        prop_assert_eq!(ring.stats().unknown_epoch, 32);
        prop_assert!(ring.open(&good, 0).is_ok());
    }

    /// Every truncation is refused: below header + tag as Short, otherwise by the tag.
    #[test]
    fn every_truncation_rejected(key in any::<[u8; 32]>(), len in 0usize..64) {
        let mut sealer = SealingKey::new(3, &key);
        let good = seal(&mut sealer, &response_body(len, 1));
        let mut ring = Keyring::new();
        ring.install(3, &key, 0).unwrap();
        for cut in 0..good.len() {
            let err = ring.open(&good[..cut], 0).unwrap_err();
            let expected = if cut < OVERHEAD { OpenError::Short } else { OpenError::Authentication };
            prop_assert_eq!(err, expected, "cut at {}", cut);
        }
        // Extending is tampering too.
        let mut longer = good.clone();
        longer.push(0);
        prop_assert_eq!(ring.open(&longer, 0).unwrap_err(), OpenError::Authentication);
        prop_assert!(ring.open(&good, 0).is_ok());
    }

    /// Reordered and duplicated delivery within the window: each datagram is accepted exactly
    /// once, every duplicate is refused as a replay.
    #[test]
    fn reorder_within_window_accepted_once(
        key in any::<[u8; 32]>(),
        order in Just((0..300usize).collect::<Vec<_>>()).prop_shuffle(),
        dups in prop::collection::vec(0..300usize, 0..60),
    ) {
        let mut sealer = SealingKey::new(9, &key);
        let datagrams: Vec<Vec<u8>> = (0..300).map(|i| seal(&mut sealer, &response_body(4, i as u8))).collect();
        let mut ring = Keyring::new();
        ring.install(9, &key, 0).unwrap();
        let mut delivered = order.clone();
        delivered.extend(dups.iter().copied());
        let mut seen = HashSet::new();
        for i in delivered {
            let r = ring.open(&datagrams[i], 0).map(|o| o.sequence);
            if seen.insert(i) {
                prop_assert_eq!(r, Ok(i as u64));
            } else {
                prop_assert_eq!(r, Err(OpenError::Replayed));
            }
        }
        prop_assert_eq!(ring.stats().opened, 300);
        prop_assert_eq!(ring.stats().replayed, dups.len() as u64);
    }

    /// The bitmap window against a `BTreeSet` oracle over duplicates, reordering within the
    /// window, stale sequences and far jumps.
    #[test]
    fn replay_window_matches_oracle(
        steps in prop::collection::vec((0u8..6, 0u64..3 * WINDOW), 1..400),
    ) {
        let mut w = ReplayWindow::new();
        let mut accepted = BTreeSet::new();
        let mut top: Option<u64> = None;
        for (kind, n) in steps {
            let base = top.unwrap_or(1 << 20);
            let seq = match kind {
                0 => base.saturating_sub(n % WINDOW),      // inside the window (maybe a dup)
                1 => base.saturating_sub(n),               // around the window's edge
                2 => base + n % 8,                         // small step forward
                3 => base + n,                             // jump, sometimes past the window
                4 => base.saturating_sub(WINDOW - 1 + n % 3), // exactly at the edge
                _ => n,                                    // absolute: mostly far behind
            };
            let expected = match top {
                None => Ok(()),
                Some(t) if seq > t => Ok(()),
                Some(t) if t - seq >= WINDOW => Err(ReplayError::TooOld),
                Some(_) if accepted.contains(&seq) => Err(ReplayError::Replayed),
                Some(_) => Ok(()),
            };
            prop_assert_eq!(w.check(seq), expected, "seq {} top {:?}", seq, top);
            if expected.is_ok() {
                w.accept(seq);
                accepted.insert(seq);
                top = Some(top.map_or(seq, |t| t.max(seq)));
            }
            prop_assert_eq!(w.highest(), top);
        }
    }

    /// Rotation (T9): epoch n+1 is announced while n is in use; datagrams of both arrive
    /// interleaved within the grace period and none is lost; after the grace period the old
    /// epoch is Expired while the new one keeps working.
    #[test]
    fn rotation_loses_nothing_within_grace(
        old_key in any::<[u8; 32]>(),
        new_key in any::<[u8; 32]>(),
        n in 0u32..u32::MAX - 1,
        old_count in 1usize..40,
        new_count in 1usize..40,
        interleave in prop::collection::vec(any::<bool>(), 80),
        grace in 1u64..10_000,
    ) {
        prop_assume!(old_key != new_key);
        let mut old = SealingKey::new(n, &old_key);
        let mut new = SealingKey::new(n + 1, &new_key);
        let old_d: Vec<Vec<u8>> = (0..old_count).map(|i| seal(&mut old, &response_body(8, i as u8))).collect();
        let new_d: Vec<Vec<u8>> = (0..new_count).map(|i| seal(&mut new, &response_body(8, i as u8))).collect();
        let mut ring = Keyring::with_grace(grace);
        let t0 = 1_000_000u64;
        ring.install(n, &old_key, t0).unwrap();
        ring.open(&old_d[0], t0).unwrap();
        ring.install(n + 1, &new_key, t0).unwrap();
        // Interleave the rest; time advances but stays inside the grace period.
        let (mut i, mut j) = (1, 0);
        let mut k = 0;
        let mut now = t0;
        while i < old_count || j < new_count {
            let take_old = j >= new_count || (i < old_count && interleave[k % interleave.len()]);
            k += 1;
            let opened = if take_old {
                i += 1;
                ring.open(&old_d[i - 1], now).map(|o| o.epoch)
            } else {
                j += 1;
                ring.open(&new_d[j - 1], now).map(|o| o.epoch)
            };
            prop_assert_eq!(opened, Ok(if take_old { n } else { n + 1 }));
            if j > 0 && now < t0 + grace - 1 {
                now += 1;
            }
        }
        prop_assert_eq!(ring.stats().opened, (old_count + new_count) as u64);
        prop_assert_eq!(ring.stats().rejected(), 0);
        prop_assert_eq!(ring.newest_authenticated(), Some(n + 1));
        // After the grace period (counted from the new epoch's first datagram) the old key is gone.
        // The new epoch's first datagram authenticated at t0 (time only moves after it).
        let stale = seal(&mut old, &response_body(8, 0xEE));
        let later = t0 + grace;
        prop_assert_eq!(ring.open(&stale, later).unwrap_err(), OpenError::Expired);
        prop_assert_eq!(ring.open(&stale, later + 1).unwrap_err(), OpenError::Expired);
        prop_assert_eq!(ring.epochs(), vec![n + 1]);
        let fresh = seal(&mut new, &response_body(8, 0xEF));
        prop_assert!(ring.open(&fresh, later).is_ok());
        prop_assert_eq!(ring.stats().expired, 2);
        // And an old key cannot be re-installed once a newer epoch is in use.
        prop_assert_eq!(
            ring.install(n, &old_key, later),
            Err(InstallError::Superseded { epoch: n, newest: n + 1 })
        );
    }

    /// A datagram under an epoch never installed, or under the right epoch but another key.
    #[test]
    fn unknown_epoch_and_wrong_key(key in any::<[u8; 32]>(), other in any::<[u8; 32]>(), epoch in 0u32..1000) {
        prop_assume!(key != other);
        let mut sealer = SealingKey::new(epoch, &key);
        let d = seal(&mut sealer, b"\x82\x02\0\0\0\0");
        let mut ring = Keyring::new();
        ring.install(epoch + 1, &key, 0).unwrap();
        prop_assert_eq!(ring.open(&d, 0).unwrap_err(), OpenError::UnknownEpoch);
        let mut ring = Keyring::new();
        ring.install(epoch, &other, 0).unwrap();
        prop_assert_eq!(ring.open(&d, 0).unwrap_err(), OpenError::Authentication);
        prop_assert_eq!(ring.stats().authentication, 1);
    }

    /// Random bytes (with or without a valid-looking header) never open.
    #[test]
    fn garbage_never_opens(key in any::<[u8; 32]>(), tail in prop::collection::vec(any::<u8>(), 0..200), valid_header in any::<bool>()) {
        let mut ring = Keyring::new();
        ring.install(1, &key, 0).unwrap();
        let mut d = Vec::new();
        if valid_header {
            d.extend_from_slice(&Header { epoch: 1, sequence: 5 }.encode());
        }
        d.extend_from_slice(&tail);
        prop_assert!(ring.open(&d, 0).is_err());
        prop_assert_eq!(ring.stats().opened, 0);
        prop_assert_eq!(ring.stats().rejected(), 1);
    }
}

/// Nonce uniqueness (T10): over many rotations with fresh keys, no (key, nonce) pair repeats,
/// and the receiving keyring follows every rotation without a rejection.
#[test]
fn nonce_unique_across_rotations() {
    let rng = ring::rand::SystemRandom::new();
    let mut pairs = HashSet::new();
    let mut keys = HashSet::new();
    let mut receiver = Keyring::with_grace(1000);
    let mut now = 0u64;
    let mut total = 0u64;
    for epoch in 0u32..300 {
        let key = generate_key(&rng).unwrap();
        assert!(keys.insert(key), "generate_key repeated a key");
        receiver.install(epoch, &key, now).unwrap();
        let mut sealer = SealingKey::new(epoch, &key);
        for i in 0..(1 + epoch % 17) {
            let d = seal(&mut sealer, &response_body(i as usize, 0));
            let h = Header::parse(&d).unwrap();
            assert!(pairs.insert((key, h.nonce())), "nonce reused under one key");
            assert_eq!(receiver.open(&d, now).unwrap().epoch, epoch);
            total += 1;
            now += 3;
        }
        assert!(receiver.epochs().len() <= 3);
    }
    assert_eq!(receiver.stats().opened, total);
    assert_eq!(receiver.stats().rejected(), 0);
}

#[test]
fn sequence_exhaustion_refused_before_wrap() {
    let key = [7u8; 32];
    let mut sealer = SealingKey::starting_at(1, &key, u64::MAX - 1);
    let mut out = vec![1, 2, 3];
    sealer.seal_into(b"x", &mut out).unwrap();
    let len = out.len();
    assert_eq!(
        sealer.seal_into(b"y", &mut out),
        Err(SealError::SequenceExhausted)
    );
    assert_eq!(out.len(), len, "a refused seal leaves the buffer unchanged");
    assert_eq!(sealer.sequence(), u64::MAX);
}

#[test]
fn install_rules() {
    let (a, b, c, d) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
    let mut ring = Keyring::new();
    ring.install(10, &a, 0).unwrap();
    ring.install(10, &a, 0).unwrap(); // re-announcement: no-op
    assert_eq!(
        ring.install(10, &b, 0),
        Err(InstallError::Conflict { epoch: 10 })
    );
    ring.install(11, &b, 0).unwrap();
    ring.install(12, &c, 0).unwrap();
    assert_eq!(ring.epochs(), vec![10, 11, 12]);
    // A fourth key evicts the oldest; one older than all held is refused.
    ring.install(13, &d, 0).unwrap();
    assert_eq!(ring.epochs(), vec![11, 12, 13]);
    assert_eq!(
        ring.install(9, &a, 0),
        Err(InstallError::Superseded {
            epoch: 9,
            newest: 13
        })
    );
    // A datagram of the evicted epoch is unknown (no newer epoch authenticated yet).
    let mut s = SealingKey::new(10, &a);
    let dg = seal(&mut s, b"hello");
    assert_eq!(ring.open(&dg, 0).unwrap_err(), OpenError::UnknownEpoch);
    // Once 12 authenticated, 11 is superseded; after the grace period it is Expired.
    let mut s12 = SealingKey::new(12, &c);
    ring.open(&seal(&mut s12, b"x"), 100).unwrap();
    let mut s11 = SealingKey::new(11, &b);
    ring.open(&seal(&mut s11, b"y"), 100 + 4999).unwrap();
    assert_eq!(
        ring.open(&seal(&mut s11, b"z"), 100 + 5000).unwrap_err(),
        OpenError::Expired
    );
    assert_eq!(ring.epochs(), vec![12, 13]);
}
