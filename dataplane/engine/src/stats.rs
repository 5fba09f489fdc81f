//! Per-subscription counters, written by the worker and read by the control plane and operators.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one subscription. All monotonic.
#[derive(Debug, Default)]
pub struct SubscriptionStats {
    /// Points encoded and accepted by the sink.
    pub points: AtomicU64,
    /// DataPacket responses accepted by the sink.
    pub packets: AtomicU64,
    /// Bytes accepted by the sink.
    pub bytes: AtomicU64,
    /// Points dropped because the subscriber's queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Points dropped by the NaN filter.
    pub dropped_nan: AtomicU64,
    /// TSSC stream restarts forced by a drop.
    pub stream_resets: AtomicU64,
}

/// A plain-value copy of [`SubscriptionStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub points: u64,
    pub packets: u64,
    pub bytes: u64,
    pub dropped_queue_full: u64,
    pub dropped_nan: u64,
    pub stream_resets: u64,
}

impl SubscriptionStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            points: self.points.load(Relaxed),
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_nan: self.dropped_nan.load(Relaxed),
            stream_resets: self.stream_resets.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
