//! Receiving a complete window of the test stream through our subscriber client.

use crate::{Expected, TestPublisher};
use std::time::Duration;
use sttp_control::client::{ClientEvent, Subscriber};
use sttp_proto::session::SubscriberEvent;
use tokio::time::timeout;

/// Appends the measurements of `ev` to `out`; returns the newest timestamp among them.
pub fn push(out: &mut Vec<Expected>, ev: &ClientEvent) -> Option<i64> {
    let ClientEvent::Measurements(batch) = ev else {
        return None;
    };
    let mut newest = None;
    for m in batch {
        out.push(Expected::from(m));
        newest = newest.max(Some(m.timestamp));
    }
    newest
}

/// Receives until a point of a frame past `current + frames` arrives; returns everything received
/// and the end of the complete window.
pub async fn receive_window(
    tp: &TestPublisher,
    sub: &mut Subscriber,
    frames: u64,
) -> (Vec<Expected>, u64) {
    let mut got = Vec::new();
    let mut end = None;
    let run = async {
        loop {
            let ev = sub.next_event().await.expect("client running");
            if let ClientEvent::Session(SubscriberEvent::Failed { command, message }) = &ev {
                panic!("publisher failed command 0x{command:02X}: {message}");
            }
            if let Some(newest) = push(&mut got, &ev) {
                let target = *end.get_or_insert(tp.current_frame() + frames);
                let frame = ((newest - crate::T0) / crate::FRAME_TICKS) as u64;
                if frame > target {
                    return target;
                }
            }
        }
    };
    let end = timeout(Duration::from_secs(20), run)
        .await
        .expect("window received in time");
    (got, end)
}
