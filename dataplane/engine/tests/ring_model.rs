//! Model test of the source → worker hand-off (`ring.rs`, design.md habit 8): random sequences
//! of publishes and receives across 1–4 workers, checked against one `VecDeque` oracle per
//! worker for order, completeness and overrun counting.
//!
//! A publish to a full worker queue waits `PUBLISH_TIMEOUT` (250 ms) before counting the miss, so
//! the main property replaces publishes the oracle predicts would overrun with receives; a second,
//! smaller property lets a bounded number of them through to check the counting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use sttp_dataplane::ring::{channels_for_tests, Batch};
use sttp_dataplane::SourcePoint;

#[derive(Debug, Clone)]
enum Op {
    /// Publish a batch of this many points (0 publishes nothing, by contract).
    Publish(usize),
    /// Worker `w % workers` takes up to `n` batches.
    Receive { w: usize, n: usize },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0usize..6).prop_map(Op::Publish),
            2 => (0usize..4, 1usize..4).prop_map(|(w, n)| Op::Receive { w, n }),
        ],
        1..80,
    )
}

/// Points with a unique signal number each, so a lost, duplicated or reordered batch shows.
fn batch(next_signal: &mut u32, len: usize) -> Vec<SourcePoint> {
    (0..len)
        .map(|i| {
            *next_signal += 1;
            SourcePoint {
                signal: *next_signal,
                timestamp: i64::from(*next_signal) * 10,
                value: i as f32,
                flags: 0,
            }
        })
        .collect()
}

/// Runs `ops` against the real channels and the oracle. `overrun_budget` is how many
/// worker-misses (each a 250 ms wait) may actually happen; further publishes the oracle predicts
/// would overrun become receives on the first full worker.
fn run(
    workers: usize,
    depth: usize,
    ops: &[Op],
    mut overrun_budget: usize,
) -> Result<(), TestCaseError> {
    let (source, receivers) = channels_for_tests(workers, depth);
    let mut oracle: Vec<VecDeque<Vec<SourcePoint>>> = vec![VecDeque::new(); workers];
    let mut next_signal = 0u32;
    let (mut batches, mut points, mut overruns) = (0u64, 0u64, 0u64);

    for op in ops {
        match *op {
            Op::Publish(len) => {
                let full: Vec<usize> = (0..workers).filter(|&w| oracle[w].len() >= depth).collect();
                if len > 0 && full.len() > overrun_budget {
                    // Too slow to let through: drain one full worker instead.
                    let w = full[0];
                    let got = receivers[w].try_recv().ok().map(|b: Batch| b.to_vec());
                    prop_assert_eq!(got, oracle[w].pop_front());
                    continue;
                }
                let points_in = batch(&mut next_signal, len);
                let missed = source.publish(&points_in);
                if len == 0 {
                    prop_assert_eq!(missed, 0);
                    continue;
                }
                prop_assert_eq!(missed, full.len(), "workers that missed the batch");
                overrun_budget -= full.len();
                for (w, q) in oracle.iter_mut().enumerate() {
                    if !full.contains(&w) {
                        q.push_back(points_in.clone());
                    }
                }
                batches += 1;
                points += len as u64;
                overruns += full.len() as u64;
            }
            Op::Receive { w, n } => {
                let w = w % workers;
                for _ in 0..n {
                    let got = receivers[w].try_recv().ok().map(|b| b.to_vec());
                    let want = oracle[w].pop_front();
                    prop_assert_eq!(got, want, "worker {} order", w);
                }
            }
        }
    }
    // Completeness: each worker drains exactly what the oracle holds, in order.
    for (w, q) in oracle.iter_mut().enumerate() {
        while let Some(want) = q.pop_front() {
            prop_assert_eq!(receivers[w].try_recv().ok().map(|b| b.to_vec()), Some(want));
        }
        prop_assert!(
            receivers[w].try_recv().is_err(),
            "worker {} has an extra batch",
            w
        );
    }
    let stats = source.stats();
    prop_assert_eq!(stats.batches.load(Relaxed), batches);
    prop_assert_eq!(stats.points.load(Relaxed), points);
    prop_assert_eq!(stats.overruns.load(Relaxed), overruns);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hand_off_matches_a_fifo_per_worker(workers in 1usize..=4, depth in 1usize..=6, ops in ops()) {
        run(workers, depth, &ops, 0)?;
    }
}

proptest! {
    // Each overrun costs the 250 ms publish timeout: few cases, at most 2 misses per case.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn overruns_are_counted_per_missing_worker(workers in 1usize..=4, depth in 1usize..=2, ops in ops()) {
        run(workers, depth, &ops, 2)?;
    }
}

/// A worker that disconnects counts as missing every later batch, and the others still get them.
#[test]
fn a_gone_worker_counts_as_missed() {
    let (source, mut receivers) = channels_for_tests(3, 4);
    drop(receivers.remove(1));
    let mut next = 0;
    let points = batch(&mut next, 3);
    assert_eq!(source.publish(&points), 1);
    for rx in &receivers {
        assert_eq!(rx.try_recv().unwrap().to_vec(), points);
    }
    assert_eq!(source.stats().overruns.load(Relaxed), 1);
}
