//! The data plane's view of a subscriber's TCP writer: a bounded tokio queue of frame bytes,
//! offered without blocking (the worker thread must never wait for a subscriber).

use sttp_dataplane::{PacketSink, SinkStatus};
use tokio::sync::mpsc::{error::TrySendError, Sender};

/// Frames for one connection's writer task.
pub(crate) struct ChannelSink(pub Sender<Vec<u8>>);

impl PacketSink for ChannelSink {
    fn offer(&mut self, frames: Vec<u8>) -> SinkStatus {
        match self.0.try_send(frames) {
            Ok(()) => SinkStatus::Accepted,
            Err(TrySendError::Full(_)) => SinkStatus::Full,
            Err(TrySendError::Closed(_)) => SinkStatus::Closed,
        }
    }
}
