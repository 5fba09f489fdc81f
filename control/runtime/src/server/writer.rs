//! One connection's writer: drains the session's bounded frame queue into the transport and
//! watches that the peer takes the bytes (docs/liveness.md).
//!
//! The no-progress check: while bytes are waiting, every `write` call must complete at least
//! one byte within [`super::Limits::send_stall_timeout`] of the last byte that was written (or of
//! the moment the bytes started waiting). Progress is measured per `write` call, not per frame,
//! so a large metadata response on a slow but live link, written in many partial writes, is
//! never mistaken for a dead peer; an idle queue is not a stall either. A peer whose kernel
//! still acknowledges but whose application stopped reading (zero window) and a peer behind a
//! black-holed path (once the kernel's send buffer is full) both stop all progress and are
//! closed as [`DeadPeer::SendStalled`]. The kernel's own verdicts (TCP_USER_TIMEOUT,
//! unanswered keep-alives: `ETIMEDOUT`, set by the listener) are [`DeadPeer::TransportTimedOut`].
//!
//! The bytes of the session's memory budget ([`super::budget`]) are returned as they are
//! written, partial writes included.

use super::budget::SessionBudget;
use super::close::CloseReason;
use super::Shared;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Time the writer gets, once the session ended, to write what is still queued.
const DRAIN_ON_CLOSE: Duration = Duration::from_secs(2);

/// Why the publisher decided a session's peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeadPeer {
    /// Bytes were waiting and no `write` completed a single byte for `stalled_for`.
    SendStalled {
        stalled_for: Duration,
        queued_bytes: usize,
    },
    /// The kernel dropped the connection with `ETIMEDOUT`: sent data unacknowledged for
    /// TCP_USER_TIMEOUT, or keep-alive probes unanswered.
    TransportTimedOut { queued_bytes: usize },
}

impl DeadPeer {
    /// Bytes the session still held for the peer.
    pub(super) fn queued_bytes(&self) -> usize {
        match *self {
            DeadPeer::SendStalled { queued_bytes, .. }
            | DeadPeer::TransportTimedOut { queued_bytes } => queued_bytes,
        }
    }
}

impl std::fmt::Display for DeadPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadPeer::SendStalled {
                stalled_for,
                queued_bytes,
            } => write!(
                f,
                "dead peer: no progress on the send queue for {:.1} s ({queued_bytes} bytes queued)",
                stalled_for.as_secs_f64()
            ),
            DeadPeer::TransportTimedOut { queued_bytes } => write!(
                f,
                "dead peer: the connection timed out (TCP user timeout or keep-alive; \
                 {queued_bytes} bytes queued)"
            ),
        }
    }
}

/// How a connection's writer ended.
#[derive(Debug)]
pub(super) enum WriterEnd {
    /// The session closed the queue and everything in it was written.
    Drained,
    /// No progress on the send queue within the stall timeout.
    Stalled {
        stalled_for: Duration,
        queued_bytes: usize,
    },
    /// A write, flush or shutdown failed.
    Failed {
        error: io::Error,
        queued_bytes: usize,
    },
    /// The writer task panicked or was cancelled.
    Lost,
}

/// Writes every frame from `rx` to `wr` until the queue closes, the peer stops taking bytes for
/// `stall` (None: never checked) or a write fails. Written bytes are returned to `budget`.
pub(super) async fn run<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut wr: W,
    budget: Arc<SessionBudget>,
    stall: Option<Duration>,
) -> WriterEnd {
    // Bytes the transport may still buffer (TLS records): flushed when the queue runs empty.
    let mut unflushed = false;
    loop {
        let frame = match rx.try_recv() {
            Ok(frame) => frame,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if unflushed {
                    let since = Instant::now();
                    if let Err(end) = guarded(stall, since, &budget, wr.flush()).await {
                        return end;
                    }
                    unflushed = false;
                }
                match rx.recv().await {
                    Some(frame) => frame,
                    None => break,
                }
            }
        };
        // The bytes start waiting now; every completed byte restarts the clock.
        let mut last_progress = Instant::now();
        let mut rest = frame.as_slice();
        while !rest.is_empty() {
            let n = guarded(stall, last_progress, &budget, wr.write(rest)).await;
            match n {
                Ok(0) => {
                    return WriterEnd::Failed {
                        error: io::ErrorKind::WriteZero.into(),
                        queued_bytes: budget.queued(),
                    }
                }
                Ok(n) => {
                    budget.release(n);
                    rest = rest.get(n..).unwrap_or_default();
                    last_progress = Instant::now();
                    unflushed = true;
                }
                Err(end) => return end,
            }
        }
    }
    // Everything was written; the peer may already be gone (the shutdown then fails) and a TLS
    // close_notify may never leave a dead link: [`finish`] bounds the wait.
    let _ = wr.shutdown().await;
    WriterEnd::Drained
}

/// Runs one transport operation; a stall when it does not complete within `stall` of `since`,
/// a failure when it fails.
async fn guarded<T>(
    stall: Option<Duration>,
    since: Instant,
    budget: &SessionBudget,
    op: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, WriterEnd> {
    let result = match stall {
        Some(limit) => match tokio::time::timeout_at(since + limit, op).await {
            Ok(result) => result,
            Err(_) => {
                return Err(WriterEnd::Stalled {
                    stalled_for: since.elapsed(),
                    queued_bytes: budget.queued(),
                })
            }
        },
        None => op.await,
    };
    result.map_err(|error| WriterEnd::Failed {
        error,
        queued_bytes: budget.queued(),
    })
}

/// The writer's end once its task finished.
pub(super) fn joined(result: Result<WriterEnd, tokio::task::JoinError>) -> WriterEnd {
    result.unwrap_or(WriterEnd::Lost)
}

/// Waits (a bounded time) for a writer whose queue the session just closed.
pub(super) async fn finish(mut writer: JoinHandle<WriterEnd>) -> WriterEnd {
    match tokio::time::timeout(DRAIN_ON_CLOSE, &mut writer).await {
        Ok(result) => joined(result),
        Err(_) => {
            writer.abort();
            WriterEnd::Lost
        }
    }
}

/// Whether the connection ended because its peer is dead: the writer's stall, or `ETIMEDOUT`
/// from the kernel on either half (whichever of reader and writer touches the socket first gets
/// the error; the other then sees an end of stream or a broken pipe).
pub(super) fn classify(
    end: &WriterEnd,
    read_error: Option<io::ErrorKind>,
    queued_now: usize,
) -> Option<DeadPeer> {
    match end {
        WriterEnd::Stalled {
            stalled_for,
            queued_bytes,
        } => Some(DeadPeer::SendStalled {
            stalled_for: *stalled_for,
            queued_bytes: *queued_bytes,
        }),
        WriterEnd::Failed {
            error,
            queued_bytes,
        } if error.kind() == io::ErrorKind::TimedOut => Some(DeadPeer::TransportTimedOut {
            queued_bytes: *queued_bytes,
        }),
        _ if read_error == Some(io::ErrorKind::TimedOut) => Some(DeadPeer::TransportTimedOut {
            queued_bytes: queued_now,
        }),
        _ => None,
    }
}

/// The connection's close reason, given the reader's `reason` (empty when the writer ended
/// first), the reader's I/O error kind if a read failed, and how the writer ended. A dead peer
/// is counted (`dead_peer_closes`) and logged once at warn.
pub(super) fn conclude(
    shared: &Shared,
    peer: SocketAddr,
    reason: CloseReason,
    read_error: Option<io::ErrorKind>,
    end: WriterEnd,
    budget: &SessionBudget,
) -> CloseReason {
    if let Some(dead) = classify(&end, read_error, budget.queued()) {
        shared.stats.dead_peer_closes.fetch_add(1, Relaxed);
        tracing::warn!(
            %peer,
            reason = %dead,
            queued_bytes = dead.queued_bytes(),
            "closing the session: dead peer"
        );
        return CloseReason::DeadPeer(dead.to_string());
    }
    reason
}

/// The close reason when the writer ended before the session did (before [`conclude`] checks
/// for a dead peer).
pub(super) fn ended_first(end: &WriterEnd) -> CloseReason {
    match end {
        WriterEnd::Failed { error, .. } => CloseReason::WriteFailed(error.to_string()),
        WriterEnd::Lost => CloseReason::WriteFailed("writer task failed".into()),
        // Only the session closes the queue; a stall is classified as a dead peer.
        WriterEnd::Drained | WriterEnd::Stalled { .. } => CloseReason::PeerClosed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::AsyncReadExt;

    const STALL: Duration = Duration::from_secs(20);

    fn queue(budget: &SessionBudget, tx: &mpsc::Sender<Vec<u8>>, frame: Vec<u8>) {
        assert!(budget.try_reserve(frame.len(), 0));
        tx.try_send(frame).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn writes_every_frame_in_order_returns_the_budget_and_ends_drained() {
        let (wr, mut rd) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let budget = SessionBudget::new(1 << 20);
        let writer = tokio::spawn(run(rx, wr, budget.clone(), Some(STALL)));
        let mut sent = Vec::new();
        for k in 0..10u8 {
            let frame: Vec<u8> = (0..300).map(|i| (i as u8).wrapping_mul(k)).collect();
            sent.extend_from_slice(&frame);
            queue(&budget, &tx, frame);
        }
        drop(tx);
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
        assert!(matches!(writer.await.unwrap(), WriterEnd::Drained));
        assert_eq!(budget.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_dead_after_exactly_the_stall_timeout() {
        let (wr, _rd) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let budget = SessionBudget::new(1 << 20);
        queue(&budget, &tx, vec![7; 1000]);
        queue(&budget, &tx, vec![8; 500]);
        let t0 = Instant::now();
        let end = run(rx, wr, budget.clone(), Some(STALL)).await;
        match end {
            WriterEnd::Stalled {
                stalled_for,
                queued_bytes,
            } => {
                assert_eq!(stalled_for, STALL);
                assert_eq!(
                    queued_bytes,
                    1500 - 64,
                    "the unwritten rest plus the next frame"
                );
            }
            other => panic!("expected a stall, got {other:?}"),
        }
        assert_eq!(t0.elapsed(), STALL, "the first 64 bytes went at once");
        let dead = classify(
            &WriterEnd::Stalled {
                stalled_for: STALL,
                queued_bytes: 1436,
            },
            None,
            0,
        );
        assert_eq!(
            dead,
            Some(DeadPeer::SendStalled {
                stalled_for: STALL,
                queued_bytes: 1436
            })
        );
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_big_frame_on_a_slow_live_link_is_progress_not_a_stall() {
        let (wr, mut rd) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let budget = SessionBudget::new(1 << 20);
        queue(&budget, &tx, vec![1; 2000]);
        drop(tx);
        let t0 = Instant::now();
        let writer = tokio::spawn(run(rx, wr, budget.clone(), Some(STALL)));
        // 32 bytes every 15 s: each write completes a little, well inside the 20 s limit, but
        // the frame takes about 15 minutes.
        let mut got = 0;
        let mut buf = [0u8; 32];
        loop {
            tokio::time::sleep(Duration::from_secs(15)).await;
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, 2000);
        assert!(matches!(writer.await.unwrap(), WriterEnd::Drained));
        assert!(
            t0.elapsed() > Duration::from_secs(600),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(budget.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_queue_is_not_a_stall() {
        let (wr, mut rd) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let budget = SessionBudget::new(1 << 20);
        let writer = tokio::spawn(run(rx, wr, budget.clone(), Some(STALL)));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!writer.is_finished(), "nothing was waiting: no stall");
        queue(&budget, &tx, vec![5; 10]);
        let mut buf = [0u8; 10];
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [5; 10]);
        drop(tx);
        assert!(matches!(writer.await.unwrap(), WriterEnd::Drained));
    }

    #[tokio::test(start_paused = true)]
    async fn with_the_check_off_a_stalled_peer_is_waited_for_forever() {
        let (wr, _rd) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let budget = SessionBudget::new(1 << 20);
        queue(&budget, &tx, vec![7; 1000]);
        let mut writer = tokio::spawn(run(rx, wr, budget.clone(), None));
        let waited = tokio::time::timeout(Duration::from_secs(86_400), &mut writer).await;
        assert!(waited.is_err(), "the writer ended: {waited:?}");
        writer.abort();
        drop(tx);
    }

    /// A transport whose writes fail with one error kind.
    struct Failing(io::ErrorKind);

    impl AsyncWrite for Failing {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(self.0.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::NotConnected.into()))
        }
    }

    #[tokio::test]
    async fn a_kernel_timeout_is_a_dead_peer_other_errors_are_not() {
        let budget = SessionBudget::new(1 << 20);
        for (kind, dead) in [
            (io::ErrorKind::TimedOut, true),
            (io::ErrorKind::BrokenPipe, false),
            (io::ErrorKind::ConnectionReset, false),
        ] {
            let (tx, rx) = mpsc::channel(4);
            queue(&budget, &tx, vec![1; 100]);
            let end = run(rx, Failing(kind), budget.clone(), Some(STALL)).await;
            assert!(
                matches!(&end, WriterEnd::Failed { error, .. } if error.kind() == kind),
                "{end:?}"
            );
            assert_eq!(classify(&end, None, 0).is_some(), dead, "{kind:?}");
            budget.release(100);
        }
        // The reader got ETIMEDOUT; the writer was idle and ended cleanly.
        assert_eq!(
            classify(&WriterEnd::Drained, Some(io::ErrorKind::TimedOut), 42),
            Some(DeadPeer::TransportTimedOut { queued_bytes: 42 })
        );
        assert_eq!(
            classify(&WriterEnd::Drained, Some(io::ErrorKind::ConnectionReset), 0),
            None
        );
        assert_eq!(classify(&WriterEnd::Lost, None, 0), None);
        // A queue closed by the session ends cleanly even if the peer is gone (shutdown fails).
        let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
        drop(tx);
        let end = run(rx, Failing(io::ErrorKind::BrokenPipe), budget, Some(STALL)).await;
        assert!(matches!(end, WriterEnd::Drained), "{end:?}");
    }
}
