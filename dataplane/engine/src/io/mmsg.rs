//! The portable backend: `sendmmsg(2)` on non-blocking sockets, up to [`MAX_PER_CALL`] messages
//! per system call, each message one datagram or one GSO group.

use super::batch::OutDatagrams;
use super::socket::{self, GsoState, Message, MsgArena, Sockets};
use super::{BackendKind, SendReport, UdpBackend};
use std::io;
use std::os::fd::RawFd;

/// Messages per `sendmmsg` call. The kernel caps one call at `UIO_MAXIOV` (1024); 64 keeps the
/// headers of one call in L1 and bounds the work per call.
pub const MAX_PER_CALL: usize = 64;

/// The `sendmmsg` backend.
pub struct MmsgBackend {
    sockets: Sockets,
    gso: GsoState,
    msgs: Vec<Message>,
    arena: MsgArena,
    mmsgs: Vec<libc::mmsghdr>,
}

// Safety: `mmsgs` holds raw pointers that are only meaningful during one `send` call, which
// completes every system call before returning; the other fields are Send.
unsafe impl Send for MmsgBackend {}

impl MmsgBackend {
    /// A backend with lazily created sockets; `gso` says whether to use UDP GSO (already probed).
    pub fn new(gso: bool, send_buffer: usize) -> Self {
        Self {
            sockets: Sockets::new(send_buffer),
            gso: GsoState::new(gso),
            msgs: Vec::new(),
            arena: MsgArena::default(),
            mmsgs: Vec::new(),
        }
    }

    /// Sends `msgs` in order, stopping at a full socket buffer. A GSO message the kernel refuses
    /// for its segment size is resent at once as plain datagrams, before the next message, so
    /// the order per destination holds. Returns false once the socket buffer was full.
    fn send_messages(&mut self, buf: &[u8], msgs: &[Message], report: &mut SendReport) -> bool {
        let mut i = 0;
        while let Some(first) = msgs.get(i) {
            let family = first.family();
            // One call takes a run of messages of one address family (one socket).
            let run_end = msgs
                .iter()
                .skip(i)
                .take(MAX_PER_CALL)
                .position(|m| m.family() != family)
                .map_or_else(|| (i + MAX_PER_CALL).min(msgs.len()), |p| i + p);
            let run = msgs.get(i..run_end).unwrap_or(&[]);
            let fd = match self.sockets.fd(family) {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::warn!("no UDP socket for {family:?}: {e}");
                    for m in run {
                        report.errors += m.datagrams as u64;
                    }
                    i = run_end;
                    continue;
                }
            };
            let hdrs = self.arena.build(buf, run);
            self.mmsgs.clear();
            self.mmsgs.extend(hdrs.iter().map(|&msg_hdr| libc::mmsghdr {
                msg_hdr,
                msg_len: 0,
            }));
            report.submissions += 1;
            match sendmmsg(fd, &mut self.mmsgs) {
                Ok(sent) => {
                    for m in run.iter().take(sent) {
                        socket::count_sent(report, m);
                    }
                    // A partial result means the next message failed or would block: the next
                    // call starts there and reports its error.
                    i += sent.max(1).min(run.len());
                    if sent == 0 {
                        // The kernel accepted nothing and reported no error; count it so the
                        // loop stays bounded.
                        if let Some(m) = run.first() {
                            report.errors += m.datagrams as u64;
                        }
                    }
                }
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
                    let Some(m) = run.first() else { break };
                    if errno == libc::EAGAIN || errno == libc::EWOULDBLOCK {
                        for rest in msgs.get(i..).unwrap_or(&[]) {
                            socket::count_failed(report, rest, errno);
                        }
                        return false;
                    }
                    i += 1;
                    match m.segment {
                        Some(segment) if self.gso.on_error(errno, usize::from(segment)) => {
                            // Plain messages never come back here: the recursion is one deep.
                            let mut plain = Vec::with_capacity(m.datagrams);
                            m.split_plain(&mut plain);
                            if !self.send_messages(buf, &plain, report) {
                                for rest in msgs.get(i..).unwrap_or(&[]) {
                                    socket::count_failed(report, rest, libc::EAGAIN);
                                }
                                return false;
                            }
                        }
                        _ => socket::count_failed(report, m, errno),
                    }
                }
            }
        }
        true
    }
}

/// `sendmmsg(fd, msgs, len, 0)`; returns how many messages the kernel took.
fn sendmmsg(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let len = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    // Safety: `msgs` is a live, exclusively borrowed slice of `len` headers whose pointers (name,
    // iovec, control) point into the backend's arena and the caller's batch buffer, both borrowed
    // for the whole call; the kernel writes only each `msg_len`. The call is synchronous, so
    // nothing is referenced after it returns. Flags 0: the socket itself is non-blocking.
    let rc = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), len, 0) };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

impl UdpBackend for MmsgBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sendmmsg
    }

    fn gso(&self) -> bool {
        self.gso.enabled()
    }

    fn send(&mut self, out: &mut OutDatagrams) -> SendReport {
        let mut report = SendReport::default();
        let mut msgs = std::mem::take(&mut self.msgs);
        socket::plan(out, &self.gso, &mut msgs, &mut report);
        self.send_messages(out.buffer(), &msgs, &mut report);
        self.msgs = msgs;
        out.clear();
        report
    }
}
