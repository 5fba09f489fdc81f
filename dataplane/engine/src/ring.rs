//! The broadcast hand-off from sources to workers: each worker owns a bounded lock-free queue
//! (crossbeam's array queue) of shared batches, and a source appends every batch to all of them.
//! Batching is what makes this cheap: one hand-off per batch, not per point.

use crate::point::SourcePoint;
use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// A batch of points shared by every worker.
pub type Batch = Arc<[SourcePoint]>;

/// How long a source waits for a full worker queue before the batch is dropped for that worker.
/// Workers never block on subscribers, so a full queue means the machine is overloaded.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(250);

/// Counters of the source side.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Batches appended.
    pub batches: AtomicU64,
    /// Points appended.
    pub points: AtomicU64,
    /// Batches a worker could not take in time (dropped for that worker).
    pub overruns: AtomicU64,
}

/// A clonable handle through which sources publish.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    workers: Arc<[Sender<Batch>]>,
    stats: Arc<RingStats>,
}

impl SourceHandle {
    pub(crate) fn new(workers: Vec<Sender<Batch>>) -> Self {
        Self {
            workers: workers.into(),
            stats: Arc::default(),
        }
    }

    /// Publishes a batch to every worker. Returns the number of workers that missed it.
    pub fn publish(&self, points: &[SourcePoint]) -> usize {
        if points.is_empty() {
            return 0;
        }
        let batch: Batch = points.into();
        self.publish_batch(batch)
    }

    /// Publishes an already shared batch.
    pub fn publish_batch(&self, batch: Batch) -> usize {
        let mut missed = 0;
        for tx in self.workers.iter() {
            match tx.send_timeout(batch.clone(), PUBLISH_TIMEOUT) {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) | Err(SendTimeoutError::Disconnected(_)) => {
                    missed += 1
                }
            }
        }
        self.stats.batches.fetch_add(1, Relaxed);
        self.stats.points.fetch_add(batch.len() as u64, Relaxed);
        self.stats.overruns.fetch_add(missed as u64, Relaxed);
        missed
    }

    /// Source-side counters.
    pub fn stats(&self) -> &RingStats {
        &self.stats
    }
}

/// [`channels`] for the model tests and benches outside the crate; not an API.
#[doc(hidden)]
pub fn channels_for_tests(workers: usize, depth: usize) -> (SourceHandle, Vec<Receiver<Batch>>) {
    channels(workers, depth)
}

/// Creates one bounded queue per worker.
pub(crate) fn channels(workers: usize, depth: usize) -> (SourceHandle, Vec<Receiver<Batch>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| crossbeam_channel::bounded(depth))
        .unzip();
    (SourceHandle::new(txs), rxs)
}
