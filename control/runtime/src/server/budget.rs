//! The per-session memory budget (test-plan T14): what one subscriber connection can make the
//! publisher hold, bounded in bytes rather than only in frames.
//!
//! What a session holds, and its bound:
//!
//! * **outgoing queue** — frames waiting for the writer task: control responses (metadata can be
//!   megabytes) and data packets (≤ 32 KiB bodies, wire.md §1 size limits) offered by the data
//!   plane. Bounded in frames by `subscriber_queue_frames` and in bytes by this budget;
//! * **framer buffer** — a partly received command frame: ≤ 8 KiB + 5 before the first frame
//!   (wire.md §1), ≤ `MAX_COMMAND_FRAME` (1 MiB) after; checked against the budget too;
//! * **read buffer** — [`READ_BUF_START`] (4 KiB), grown once to [`READ_BUF_MAX`] (64 KiB) when a
//!   read fills it, so idle and hostile connections cost little;
//! * **session output** — responses to at most [`FRAMES_PER_TURN`] commands before they are
//!   moved into the (budgeted) outgoing queue;
//! * fixed state (session, encoder, subscription routes) proportional to the subscription.
//!
//! A data packet that does not fit is dropped and counted like a full queue (the slow-subscriber
//! policy: the TSSC stream restarts). Data may fill the budget only up to a reserve of 1/8, kept
//! for control responses (keep-alive NoOPs, Succeeded/Failed), so a slow but live subscriber
//! keeps its session; a control response that does not fit even into the reserve closes the
//! session, because the subscriber is not reading (e.g. MetadataRefresh in a loop, never
//! reading the answers). One frame is always admitted into an empty queue, so a metadata
//! response larger than the budget still reaches a subscriber that reads it.

use crate::sink::ChannelSink;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::Arc;
use sttp_dataplane::{PacketSink, SinkStatus};

/// Initial size of a connection's read buffer.
pub(super) const READ_BUF_START: usize = 4 * 1024;
/// Size the read buffer grows to once a read fills it.
pub(super) const READ_BUF_MAX: usize = 64 * 1024;
/// Command frames handled before their responses are queued and the budget checked: a read
/// can hold thousands of small commands (e.g. 13 000 MetadataRefresh in 64 KiB), and their
/// responses must not pile up unchecked in the session's output queue.
pub(super) const FRAMES_PER_TURN: usize = 8;

/// Bytes queued for one connection's writer, against a limit.
#[derive(Debug)]
pub(super) struct SessionBudget {
    queued: AtomicUsize,
    limit: usize,
}

impl SessionBudget {
    pub(super) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            queued: AtomicUsize::new(0),
            limit,
        })
    }

    /// Reserves `len` queued bytes of a control response if they fit next to `extra` other
    /// held bytes (buffered input), or if the queue is empty; false otherwise.
    pub(super) fn try_reserve(&self, len: usize, extra: usize) -> bool {
        self.reserve(len, extra)
    }

    /// Reserves `len` queued bytes of data, leaving the control reserve free.
    fn try_reserve_data(&self, len: usize) -> bool {
        self.reserve(len, self.limit / 8)
    }

    fn reserve(&self, len: usize, extra: usize) -> bool {
        let mut queued = self.queued.load(Acquire);
        loop {
            let fits =
                queued == 0 || queued.saturating_add(len).saturating_add(extra) <= self.limit;
            if !fits {
                return false;
            }
            match self
                .queued
                .compare_exchange_weak(queued, queued + len, AcqRel, Acquire)
            {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
    }

    /// Returns bytes the writer has written (or that were never queued).
    pub(super) fn release(&self, len: usize) {
        let _ = self
            .queued
            .fetch_update(AcqRel, Acquire, |q| Some(q.saturating_sub(len)));
    }

    /// Bytes queued now.
    pub(super) fn queued(&self) -> usize {
        self.queued.load(Acquire)
    }

    /// The limit.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }
}

/// The data plane's sink for one connection, charged against the session's budget.
pub(super) struct BudgetSink {
    inner: ChannelSink,
    budget: Arc<SessionBudget>,
}

impl BudgetSink {
    pub(super) fn new(inner: ChannelSink, budget: Arc<SessionBudget>) -> Self {
        Self { inner, budget }
    }
}

impl PacketSink for BudgetSink {
    fn offer(&mut self, frames: Vec<u8>) -> SinkStatus {
        let len = frames.len();
        if !self.budget.try_reserve_data(len) {
            return SinkStatus::Full;
        }
        let status = self.inner.offer(frames);
        if status != SinkStatus::Accepted {
            self.budget.release(len);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_limit_and_always_one_frame_into_an_empty_queue() {
        let b = SessionBudget::new(100);
        assert!(b.try_reserve(500, 0), "an empty queue takes one big frame");
        assert!(!b.try_reserve(1, 0));
        b.release(500);
        assert!(b.try_reserve(60, 0));
        assert!(b.try_reserve(40, 0));
        assert!(!b.try_reserve(1, 0));
        b.release(40);
        assert!(!b.try_reserve(30, 20), "buffered input counts too");
        assert!(b.try_reserve(30, 10));
        assert_eq!(b.queued(), 90);
        b.release(1000);
        assert_eq!(b.queued(), 0, "never below zero");
    }

    #[tokio::test]
    async fn data_beyond_the_budget_is_refused_as_full_and_the_bytes_return_when_written() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let budget = SessionBudget::new(1600);
        let mut sink = BudgetSink::new(ChannelSink(tx), budget.clone());
        assert_eq!(sink.offer(vec![0; 600]), SinkStatus::Accepted);
        assert_eq!(sink.offer(vec![0; 600]), SinkStatus::Accepted);
        // 1200 queued: data stops at 1600 - 1600/8 = 1400.
        assert_eq!(sink.offer(vec![0; 201]), SinkStatus::Full);
        assert_eq!(sink.offer(vec![0; 200]), SinkStatus::Accepted);
        // The control reserve is still there for a response.
        assert!(budget.try_reserve(200, 0));
        assert!(!budget.try_reserve(1, 0));
        assert_eq!(budget.queued(), 1600);
        let first = rx.recv().await.unwrap_or_default();
        budget.release(first.len());
        assert_eq!(sink.offer(vec![0; 400]), SinkStatus::Accepted);
        let second = rx.recv().await.unwrap_or_default();
        budget.release(second.len());
        assert_eq!(budget.queued(), 800);
        drop(rx);
        assert_eq!(sink.offer(vec![0; 1]), SinkStatus::Closed);
        assert_eq!(budget.queued(), 800, "a refused offer is not charged");
    }
}
