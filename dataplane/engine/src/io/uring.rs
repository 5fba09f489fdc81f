//! The io_uring backend: one ring per backend, one `IORING_OP_SENDMSG` per datagram or GSO group,
//! all of a chunk submitted with one `io_uring_enter` that also waits for every completion.
//!
//! Written in the kernel's terms (design.md habit 7):
//! - The `msghdr`/`iovec`/address/cmsg of every SQE live in the backend's [`MsgArena`], and the
//!   payload in the caller's batch buffer; both stay untouched until that SQE's CQE is reaped.
//!   A send never returns with an SQE or a request in flight.
//! - The sockets are `O_NONBLOCK`, so the kernel completes a send that would block at once with
//!   `-EAGAIN` instead of parking it on a poll; a chunk therefore completes inline.
//! - Bounded work: at most one ring's worth of SQEs per `io_uring_enter`, and a send stops at the
//!   first full socket buffer.

use super::batch::OutDatagrams;
use super::socket::{self, GsoState, Message, MsgArena, Sockets};
use super::{BackendKind, SendReport, UdpBackend};
use io_uring::{opcode, types, IoUring, Probe};
use std::io;
use std::os::fd::RawFd;

/// Submission queue entries per ring: four full `sendmmsg`-sized chunks.
pub const RING_ENTRIES: u32 = 256;

/// `io_uring_enter` calls without progress before the ring is considered broken and rebuilt.
const MAX_IDLE_ENTERS: u32 = 64;

/// Creates the ring with explicit flags:
/// - `SUBMIT_ALL`: keep submitting the rest of a chunk when one SQE fails at submission, so no
///   SQE is left behind in the queue pointing at a batch the caller is about to reuse;
/// - `COOP_TASKRUN`: the only thread that waits on this ring is the one submitting, inside
///   `io_uring_enter`, so the kernel need not interrupt it to run completion work.
///
/// Deliberately not: `SQPOLL` (a kernel thread spinning on one of our two cores), `IOPOLL`
/// (block devices only), `SINGLE_ISSUER`/`DEFER_TASKRUN` (they bind the ring to the creating
/// thread, and a backend may be opened on one thread and moved to its worker), `SEND_ZC`
/// (measured 20–26 % slower here: the kernel copied anyway). Kernels older than 5.19 reject the
/// flags; then the ring is created without them.
fn new_ring(entries: u32) -> io::Result<IoUring> {
    match IoUring::builder()
        .setup_submit_all()
        .setup_coop_taskrun()
        .build(entries)
    {
        Ok(ring) => Ok(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries),
        Err(e) => Err(e),
    }
}

/// Checks that io_uring works here and supports `IORING_OP_SENDMSG`; the error says why not.
pub fn probe() -> io::Result<()> {
    let ring = new_ring(8).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => " (io_uring disabled: see sysctl kernel.io_uring_disabled)",
            Some(libc::ENOSYS) => " (kernel without io_uring)",
            _ => "",
        };
        io::Error::new(e.kind(), format!("cannot create an io_uring: {e}{hint}"))
    })?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| io::Error::new(e.kind(), format!("io_uring opcode probe failed: {e}")))?;
    if probe.is_supported(opcode::SendMsg::CODE) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel's io_uring does not support IORING_OP_SENDMSG",
        ))
    }
}

/// The io_uring backend.
pub struct UringBackend {
    /// `None` after the ring broke and could not be rebuilt: every datagram then counts as an
    /// error.
    ring: Option<IoUring>,
    sockets: Sockets,
    gso: GsoState,
    msgs: Vec<Message>,
    retry: Vec<Message>,
    fds: Vec<Option<RawFd>>,
    arena: MsgArena,
}

impl UringBackend {
    /// Creates the ring; sockets are created on first use. `gso`: use UDP GSO (already probed).
    pub fn new(gso: bool, send_buffer: usize) -> io::Result<Self> {
        Ok(Self {
            ring: Some(new_ring(RING_ENTRIES)?),
            sockets: Sockets::new(send_buffer),
            gso: GsoState::new(gso),
            msgs: Vec::new(),
            retry: Vec::new(),
            fds: Vec::new(),
            arena: MsgArena::default(),
        })
    }

    /// Sends `msgs` in order, in chunks of one ring. Failed GSO messages to retry plain go to
    /// `retry`. Returns false once a socket buffer was full (the rest is counted as would_block).
    ///
    /// Unlike `sendmmsg`, the messages after a refused GSO message in the same chunk are already
    /// sent when its CQE says so; its plain resend therefore arrives after them. This happens
    /// once per too-large segment size (the GSO state then plans such groups plain).
    fn send_messages(
        &mut self,
        buf: &[u8],
        msgs: &[Message],
        retry: &mut Vec<Message>,
        report: &mut SendReport,
    ) -> bool {
        let mut i = 0;
        while i < msgs.len() {
            let Some(ring) = self.ring.as_mut() else {
                for m in msgs.get(i..).unwrap_or(&[]) {
                    report.errors += m.datagrams as u64;
                }
                return true;
            };
            let cap = ring.params().sq_entries() as usize;
            let end = (i + cap.max(1)).min(msgs.len());
            let chunk = msgs.get(i..end).unwrap_or(&[]);
            i = end;

            self.fds.clear();
            let mut logged = false;
            for m in chunk {
                let fd = self.sockets.fd(m.family());
                if let Err(e) = &fd {
                    if !logged {
                        tracing::warn!("no UDP socket for {}: {e}", m.dest);
                        logged = true;
                    }
                }
                self.fds.push(fd.ok());
            }
            let hdrs = self.arena.build(buf, chunk);
            let mut full = false;
            match submit_chunk(ring, hdrs, &self.fds) {
                Ok(results) => {
                    for (m, res) in chunk.iter().zip(results.iter()) {
                        match *res {
                            Completion::Sent => socket::count_sent(report, m),
                            Completion::NoSocket => report.errors += m.datagrams as u64,
                            Completion::Failed(errno) => {
                                if errno == libc::EAGAIN || errno == libc::EWOULDBLOCK {
                                    full = true;
                                    socket::count_failed(report, m, errno);
                                    continue;
                                }
                                match m.segment {
                                    Some(seg) if self.gso.on_error(errno, usize::from(seg)) => {
                                        m.split_plain(retry)
                                    }
                                    _ => socket::count_failed(report, m, errno),
                                }
                            }
                        }
                    }
                    report.submissions += results.enters;
                }
                Err(broken) => {
                    report.submissions += broken.enters;
                    tracing::error!(
                        "io_uring send failed ({}); rebuilding the ring",
                        broken.error
                    );
                    for m in chunk {
                        report.errors += m.datagrams as u64;
                    }
                    // Dropping the ring discards any SQE it did not consume; every consumed one
                    // has completed (see `submit_chunk`), so nothing refers to our buffers.
                    self.ring = None;
                    match new_ring(RING_ENTRIES) {
                        Ok(ring) => self.ring = Some(ring),
                        Err(e) => tracing::error!("cannot rebuild the io_uring: {e}"),
                    }
                }
            }
            if full {
                for m in msgs.get(i..).unwrap_or(&[]) {
                    socket::count_failed(report, m, libc::EAGAIN);
                }
                return false;
            }
        }
        true
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    Sent,
    NoSocket,
    Failed(i32),
}

/// The per-message outcomes of one chunk and the `io_uring_enter` calls it took.
struct ChunkResults {
    outcomes: Vec<Completion>,
    enters: u64,
}

impl ChunkResults {
    fn iter(&self) -> std::slice::Iter<'_, Completion> {
        self.outcomes.iter()
    }
}

/// A ring that stopped making progress; it must be dropped.
struct Broken {
    error: io::Error,
    enters: u64,
}

/// Pushes one `SendMsg` SQE per header (skipping messages without a socket), submits them and
/// waits until every one has completed.
///
/// On `Ok`, no request of this chunk is queued or in flight. On `Err`, SQEs may remain
/// unconsumed in the submission queue, and the caller must drop the ring before the headers or
/// the payload change.
fn submit_chunk(
    ring: &mut IoUring,
    hdrs: &mut [libc::msghdr],
    fds: &[Option<RawFd>],
) -> Result<ChunkResults, Broken> {
    let mut outcomes = vec![Completion::NoSocket; hdrs.len()];
    let mut pushed = 0usize;
    for (index, (hdr, fd)) in hdrs.iter_mut().zip(fds).enumerate() {
        let Some(fd) = *fd else { continue };
        // MSG_NOSIGNAL is irrelevant for UDP; flags 0 as with sendmmsg. No IOSQE flags: no
        // linking (one failed send must not cancel the next), no forced async (inline issue is
        // what keeps this cheap and in order).
        let entry = opcode::SendMsg::new(types::Fd(fd), hdr as *const libc::msghdr)
            .build()
            .user_data(index as u64);
        if push(ring, &entry).is_err() {
            // The chunk is at most one ring long and the queue was empty, so this cannot
            // happen; count it rather than trust it.
            if let Some(o) = outcomes.get_mut(index) {
                *o = Completion::Failed(libc::EBUSY);
            }
            continue;
        }
        pushed += 1;
    }

    let mut reaped = 0usize;
    let mut enters = 0u64;
    let mut idle = 0u32;
    while reaped < pushed {
        enters += 1;
        let progress_before = reaped;
        if let Err(error) = ring.submit_and_wait(pushed - reaped) {
            match error.raw_os_error() {
                // Interrupted, or the kernel is short of memory/CQ room for a moment: reap what
                // is there and try again.
                Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY) => {}
                _ => return Err(Broken { error, enters }),
            }
        }
        for cqe in ring.completion() {
            let index = cqe.user_data() as usize;
            if let Some(o) = outcomes.get_mut(index) {
                let res = cqe.result();
                *o = if res >= 0 {
                    Completion::Sent
                } else {
                    Completion::Failed(-res)
                };
            }
            reaped += 1;
        }
        if reaped == progress_before {
            idle += 1;
            if idle >= MAX_IDLE_ENTERS {
                return Err(Broken {
                    error: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} of {pushed} sends never completed", pushed - reaped),
                    ),
                    enters,
                });
            }
        } else {
            idle = 0;
        }
    }
    Ok(ChunkResults { outcomes, enters })
}

/// Pushes one SQE.
fn push(
    ring: &mut IoUring,
    entry: &io_uring::squeue::Entry,
) -> Result<(), io_uring::squeue::PushError> {
    // Safety: the entry points at a `msghdr` in the backend's arena, which points at an address,
    // an iovec and a cmsg in the same arena and at the caller's batch buffer. `send_messages`
    // keeps all of them alive and unchanged until `submit_chunk` has reaped this entry's CQE,
    // or drops the ring (discarding the unconsumed entry) before changing them.
    unsafe { ring.submission().push(entry) }
}

impl UdpBackend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }

    fn gso(&self) -> bool {
        self.gso.enabled()
    }

    fn send(&mut self, out: &mut OutDatagrams) -> SendReport {
        let mut report = SendReport::default();
        let mut msgs = std::mem::take(&mut self.msgs);
        let mut retry = std::mem::take(&mut self.retry);
        retry.clear();
        socket::plan(out, &self.gso, &mut msgs, &mut report);
        let room = self.send_messages(out.buffer(), &msgs, &mut retry, &mut report);
        if !retry.is_empty() {
            if room {
                let mut again = Vec::new();
                self.send_messages(out.buffer(), &retry, &mut again, &mut report);
            } else {
                for m in &retry {
                    socket::count_failed(&mut report, m, libc::EAGAIN);
                }
            }
        }
        self.msgs = msgs;
        self.retry = retry;
        out.clear();
        report
    }
}
