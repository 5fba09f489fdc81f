//! Checks every received point against the oracle (test-plan §2.1) and records latency.

use crate::oracle;
use crate::report::Latency;
use hdrhistogram::Histogram;
use sttp_proto::session::ReceivedMeasurement;

/// Highest latency the histogram tracks exactly, in µs (60 s); larger values are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Per-subscriber checker: one per subscriber, merged at the end.
#[derive(Debug)]
pub struct Validator {
    /// Signals in the subscribed set are `0..signals`.
    signals: u32,
    /// Latest timestamp seen per signal (i64::MIN = none yet).
    last: Vec<i64>,
    pub points_total: u64,
    pub window_points: u64,
    pub bad_values: u64,
    pub out_of_order: u64,
    pub unknown_signals: u64,
    histogram: Histogram<u64>,
}

impl Validator {
    /// A checker for a subscription to signals `0..signals`.
    pub fn new(signals: u32) -> anyhow::Result<Self> {
        // Three significant digits: p99.9 is exact to 0.1 %.
        let histogram = Histogram::new_with_max(MAX_LATENCY_US, 3)
            .map_err(|e| anyhow::anyhow!("latency histogram: {e}"))?;
        Ok(Self {
            signals,
            last: vec![i64::MIN; signals as usize],
            points_total: 0,
            window_points: 0,
            bad_values: 0,
            out_of_order: 0,
            unknown_signals: 0,
            histogram,
        })
    }

    /// Checks one packet's points. `now_ticks` is the receipt time; `in_window` says whether the
    /// points count towards throughput and latency (validation covers the whole run).
    pub fn check(&mut self, points: &[ReceivedMeasurement], now_ticks: i64, in_window: bool) {
        self.points_total += points.len() as u64;
        for m in points {
            let Some(i) = oracle::signal_index(&m.signal_id).filter(|&i| i < self.signals) else {
                self.unknown_signals += 1;
                continue;
            };
            let t = m.timestamp;
            if m.value.to_bits() != oracle::value(i, t).to_bits() {
                self.bad_values += 1;
            }
            if let Some(last) = self.last.get_mut(i as usize) {
                if t <= *last {
                    self.out_of_order += 1;
                } else {
                    *last = t;
                }
            }
            if in_window {
                let us = ((now_ticks - t).max(0) / 10) as u64;
                self.histogram.saturating_record(us.min(MAX_LATENCY_US));
            }
        }
        if in_window {
            self.window_points += points.len() as u64;
        }
    }

    /// Adds another subscriber's counts and latencies.
    pub fn merge(&mut self, other: &Validator) {
        self.points_total += other.points_total;
        self.window_points += other.window_points;
        self.bad_values += other.bad_values;
        self.out_of_order += other.out_of_order;
        self.unknown_signals += other.unknown_signals;
        // Same bounds on both sides, so adding cannot fail; a failure would only lose samples.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Latency percentiles of the window.
    pub fn latency(&self) -> Latency {
        let h = &self.histogram;
        Latency {
            samples: h.len(),
            p50_us: h.value_at_quantile(0.5) as f64,
            p99_us: h.value_at_quantile(0.99) as f64,
            p999_us: h.value_at_quantile(0.999) as f64,
            max_us: h.max() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{signal_guid, value};

    fn point(i: u32, t: i64) -> ReceivedMeasurement {
        ReceivedMeasurement {
            signal_id: signal_guid(i),
            timestamp: t,
            value: value(i, t),
            flags: 0,
        }
    }

    #[test]
    fn good_points_pass_and_every_fault_is_counted() {
        let mut v = Validator::new(10).unwrap();
        let t = 639_308_160_000_000_000;
        let good: Vec<_> = (0..10).map(|i| point(i, t)).collect();
        v.check(&good, t + 20_000, true); // 2 ms later
        assert_eq!((v.bad_values, v.out_of_order, v.unknown_signals), (0, 0, 0));
        let mut wrong = point(3, t + 1);
        wrong.value += 1.0 / 256.0;
        let faults = vec![
            point(4, t),  // repeats t: out of order
            wrong,        // value mismatch
            point(10, t), // outside the subscribed set
        ];
        v.check(&faults, t + 30_000, false);
        assert_eq!((v.bad_values, v.out_of_order, v.unknown_signals), (1, 1, 1));
        assert_eq!(v.points_total, 13);
        assert_eq!(v.window_points, 10);
        let lat = v.latency();
        assert_eq!(lat.samples, 10);
        assert!((1999.0..=2001.0).contains(&lat.p50_us), "{lat:?}");
    }

    #[test]
    fn merge_adds_counts_and_samples() {
        let t = 639_308_160_000_000_000;
        let mut a = Validator::new(2).unwrap();
        let mut b = Validator::new(2).unwrap();
        a.check(&[point(0, t)], t + 10, true);
        b.check(&[point(1, t), point(1, t)], t + 10_000_000, true);
        a.merge(&b);
        assert_eq!(a.window_points, 3);
        assert_eq!(a.out_of_order, 1);
        assert_eq!(a.latency().samples, 3);
        assert!(a.latency().max_us >= 999_000.0);
    }
}
