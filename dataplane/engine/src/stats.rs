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
    /// UDP datagrams handed to the worker's sender.
    pub datagrams: AtomicU64,
    /// Datagrams a sealer refused (never sent).
    pub seal_failures: AtomicU64,
    /// Data-channel keys put in use after the first one.
    pub key_rotations: AtomicU64,
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
    pub datagrams: u64,
    pub seal_failures: u64,
    pub key_rotations: u64,
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
            datagrams: self.datagrams.load(Relaxed),
            seal_failures: self.seal_failures.load(Relaxed),
            key_rotations: self.key_rotations.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// Counters of one worker. All monotonic except `subscriptions`.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Loop turns that did work.
    pub turns: AtomicU64,
    /// Source batches routed.
    pub batches: AtomicU64,
    /// Source points routed (each counted once, whatever its fan-out).
    pub points_in: AtomicU64,
    /// Datagrams the kernel accepted.
    pub datagrams_sent: AtomicU64,
    /// Bytes of those datagrams.
    pub bytes_sent: AtomicU64,
    /// Datagrams dropped because the socket's send buffer was full.
    pub send_would_block: AtomicU64,
    /// Datagrams dropped by other send errors.
    pub send_errors: AtomicU64,
    /// Send system calls or io_uring submissions.
    pub submissions: AtomicU64,
    /// Subscriptions this worker holds now.
    pub subscriptions: AtomicU64,
}

/// A plain-value copy of [`WorkerStats`], with the worker's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatsSnapshot {
    pub index: usize,
    /// Core the worker is pinned to, if pinned.
    pub core: Option<usize>,
    /// UDP backend in use ("io_uring", "sendmmsg"), once one was opened.
    pub backend: Option<String>,
    pub turns: u64,
    pub batches: u64,
    pub points_in: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub send_would_block: u64,
    pub send_errors: u64,
    pub submissions: u64,
    pub subscriptions: u64,
}

impl WorkerStats {
    /// Reads every counter.
    pub fn snapshot(
        &self,
        index: usize,
        core: Option<usize>,
        backend: Option<String>,
    ) -> WorkerStatsSnapshot {
        WorkerStatsSnapshot {
            index,
            core,
            backend,
            turns: self.turns.load(Relaxed),
            batches: self.batches.load(Relaxed),
            points_in: self.points_in.load(Relaxed),
            datagrams_sent: self.datagrams_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            send_would_block: self.send_would_block.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            submissions: self.submissions.load(Relaxed),
            subscriptions: self.subscriptions.load(Relaxed),
        }
    }
}
