//! Where a subscription's encoded bytes go. The data plane never blocks on a subscriber: a sink
//! either takes the bytes at once or says it is full, and the encoder then applies the
//! slow-subscriber policy (drop the bytes, count them, and restart the TSSC stream so the
//! subscriber resynchronises on the next packet).

/// Result of offering bytes to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkStatus {
    /// The bytes were queued for the subscriber.
    Accepted,
    /// The subscriber's queue is full; the bytes were dropped.
    Full,
    /// The subscriber is gone; the subscription should be removed.
    Closed,
}

/// A subscriber's outgoing byte queue (e.g. the TCP writer of its command channel).
pub trait PacketSink: Send {
    /// Offers whole frames. Must not block.
    fn offer(&mut self, frames: Vec<u8>) -> SinkStatus;
}

/// A sink collecting frames in memory, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct VecSink {
    /// Every frame byte accepted so far, shared with the test.
    pub frames: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Refuse everything once this many bytes are held (None = unbounded).
    pub capacity: Option<usize>,
}

impl PacketSink for VecSink {
    fn offer(&mut self, frames: Vec<u8>) -> SinkStatus {
        let Ok(mut held) = self.frames.lock() else {
            return SinkStatus::Closed;
        };
        if let Some(cap) = self.capacity {
            if held.len() + frames.len() > cap {
                return SinkStatus::Full;
            }
        }
        held.extend_from_slice(&frames);
        SinkStatus::Accepted
    }
}
