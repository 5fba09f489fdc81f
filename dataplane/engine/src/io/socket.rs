//! What both UDP backends share: the sending sockets (one per address family, created lazily),
//! socket options, the GSO state, and the kernel message headers (`msghdr` + `iovec` + address +
//! `UDP_SEGMENT` control message) built from an [`OutDatagrams`] batch.
//!
//! Everything that hands raw pointers to the kernel is fenced here and in the two backends, each
//! `unsafe` block in a small function with its `// Safety:` argument.

use super::batch::OutDatagrams;
use super::SendReport;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// Address family of a destination; selects the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => Family::V4,
            SocketAddr::V6(_) => Family::V6,
        }
    }
}

/// The backend's sending sockets: one non-blocking UDP socket per address family, bound to the
/// unspecified address with an ephemeral port, created on first use.
#[derive(Debug)]
pub(crate) struct Sockets {
    send_buffer: usize,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    pub(crate) fn new(send_buffer: usize) -> Self {
        Self {
            send_buffer,
            v4: None,
            v6: None,
        }
    }

    /// The socket for `family`, created on first use.
    pub(crate) fn fd(&mut self, family: Family) -> io::Result<RawFd> {
        let (slot, bind) = match family {
            Family::V4 => (&mut self.v4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
            Family::V6 => (&mut self.v6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))),
        };
        if let Some(socket) = slot {
            return Ok(socket.as_raw_fd());
        }
        let socket = open_socket(bind, self.send_buffer)?;
        let fd = socket.as_raw_fd();
        *slot = Some(socket);
        Ok(fd)
    }
}

/// Opens one non-blocking sending socket.
fn open_socket(bind: SocketAddr, send_buffer: usize) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(bind)
        .map_err(|e| io::Error::new(e.kind(), format!("binding a UDP socket to {bind}: {e}")))?;
    socket.set_nonblocking(true)?;
    if send_buffer > 0 {
        let size = i32::try_from(send_buffer).unwrap_or(i32::MAX);
        let fd = socket.as_raw_fd();
        // SO_SNDBUFFORCE ignores net.core.wmem_max but needs CAP_NET_ADMIN; SO_SNDBUF is capped.
        let set = set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size)
            .or_else(|_| set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size));
        if let Err(e) = set {
            // Not fatal: the default buffer only drops more under bursts (counted as would_block).
            tracing::warn!("setting SO_SNDBUF to {send_buffer} on the UDP socket failed: {e}");
        }
    }
    Ok(socket)
}

/// `setsockopt(fd, level, name, &value, sizeof(int))`.
pub(crate) fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    let len = std::mem::size_of::<i32>() as libc::socklen_t;
    // Safety: `value` lives on this stack frame for the whole call and `len` is its exact size;
    // the kernel only reads it. A bad `fd` makes the call fail with EBADF, nothing worse.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&value as *const i32).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this kernel accepts `UDP_SEGMENT` on a UDP socket of `family` (setting it to 0, the
/// default, changes nothing).
pub(crate) fn probe_gso(family: Family) -> io::Result<()> {
    let bind = match family {
        Family::V4 => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Family::V6 => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    };
    let socket = UdpSocket::bind(bind)?;
    set_int_option(socket.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, 0)
}

/// Whether GSO is in use, and for which segment sizes.
///
/// GSO can fail per send for reasons the socket option probe cannot see: `EIO` when the egress
/// device cannot checksum-offload (then GSO is switched off), `EMSGSIZE` (IP append path) or
/// `EINVAL` (`udp_send_skb`) when a segment plus headers exceeds the path MTU (then segments of
/// that size and larger go out plain from now on).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GsoState {
    enabled: bool,
    /// Largest segment size still sent with GSO.
    max_segment: usize,
}

/// Below this segment size, GSO stops paying off; an MTU error that pushes the limit this low
/// switches GSO off.
const MIN_GSO_SEGMENT: usize = 256;

impl GsoState {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            max_segment: usize::from(u16::MAX),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn use_for(&self, segment: usize, count: usize) -> bool {
        self.enabled && count > 1 && segment <= self.max_segment
    }

    /// Learns from a failed GSO send; returns whether the send should be retried without GSO.
    pub(crate) fn on_error(&mut self, errno: i32, segment: usize) -> bool {
        match errno {
            libc::EIO => {
                self.enabled = false;
                tracing::warn!("UDP GSO send failed with EIO (no checksum offload on the egress device); sending plain datagrams from now on");
                true
            }
            libc::EINVAL | libc::EMSGSIZE => {
                self.max_segment = segment.saturating_sub(1).min(self.max_segment);
                if self.max_segment < MIN_GSO_SEGMENT {
                    self.enabled = false;
                    tracing::warn!(
                        "UDP GSO send of {segment}-byte segments failed with errno {errno}; GSO off"
                    );
                } else {
                    tracing::warn!("UDP GSO send of {segment}-byte segments failed with errno {errno} (segment over the path MTU); segments of {segment} bytes and more go out plain");
                }
                true
            }
            _ => false,
        }
    }
}

/// One `sendmsg`: a byte range of the batch buffer to one destination, either one datagram or a
/// GSO group cut into `segment`-byte datagrams by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) dest: SocketAddr,
    pub(crate) start: usize,
    pub(crate) len: usize,
    /// GSO segment size; `None` for a plain datagram.
    pub(crate) segment: Option<u16>,
    /// Datagrams this message carries.
    pub(crate) datagrams: usize,
}

impl Message {
    pub(crate) fn family(&self) -> Family {
        Family::of(&self.dest)
    }

    /// The same bytes as one plain message per datagram (after a GSO failure).
    pub(crate) fn split_plain(&self, into: &mut Vec<Message>) {
        let segment = self.segment.map_or(self.len, usize::from).max(1);
        let end = self.start + self.len;
        let mut offset = self.start;
        while offset < end {
            let len = segment.min(end - offset);
            into.push(Message {
                dest: self.dest,
                start: offset,
                len,
                segment: None,
                datagrams: 1,
            });
            offset += len;
        }
    }
}

/// Plans the messages of a batch: one per GSO group where GSO applies, else one per datagram.
///
/// Datagrams to port 0 are counted as errors here: the kernel rejects them with `EINVAL`, which
/// a GSO send would otherwise mistake for a segment-size problem.
pub(crate) fn plan(
    out: &OutDatagrams,
    gso: &GsoState,
    into: &mut Vec<Message>,
    report: &mut SendReport,
) {
    into.clear();
    for g in out.groups() {
        if g.dest.port() == 0 {
            report.errors += g.count as u64;
            continue;
        }
        match u16::try_from(g.segment) {
            Ok(segment) if gso.use_for(g.segment, g.count) => into.push(Message {
                dest: g.dest,
                start: g.start,
                len: g.len,
                segment: Some(segment),
                datagrams: g.count,
            }),
            _ => {
                for (start, len) in g.datagram_ranges() {
                    into.push(Message {
                        dest: g.dest,
                        start,
                        len,
                        segment: None,
                        datagrams: 1,
                    });
                }
            }
        }
    }
}

/// Counts a message the kernel accepted.
pub(crate) fn count_sent(report: &mut SendReport, msg: &Message) {
    report.datagrams += msg.datagrams as u64;
    report.bytes += msg.len as u64;
}

/// Counts a message that failed with `errno` (after any GSO retry was decided).
pub(crate) fn count_failed(report: &mut SendReport, msg: &Message, errno: i32) {
    if errno == libc::EAGAIN || errno == libc::EWOULDBLOCK {
        report.would_block += msg.datagrams as u64;
    } else {
        report.errors += msg.datagrams as u64;
    }
}

/// A socket address in the kernel's layout.
#[derive(Clone, Copy)]
#[repr(C)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

fn raw_addr(addr: &SocketAddr) -> (RawAddr, libc::socklen_t) {
    match addr {
        SocketAddr::V4(a) => (
            RawAddr {
                v4: libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                },
            },
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ),
        SocketAddr::V6(a) => (
            RawAddr {
                v6: libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                },
            },
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        ),
    }
}

/// Room for one `cmsghdr` carrying a `u16`, aligned like `cmsghdr` (what `CMSG_SPACE(2)` gives).
#[derive(Clone, Copy)]
#[repr(C)]
struct SegmentCmsg {
    hdr: libc::cmsghdr,
    data: [u8; 8],
}

// Safety: `CMSG_LEN` is pure arithmetic on its argument; it dereferences nothing.
const SEGMENT_CMSG_LEN: usize = unsafe { libc::CMSG_LEN(2) } as usize;
// Safety: as above.
const SEGMENT_CMSG_SPACE: usize = unsafe { libc::CMSG_SPACE(2) } as usize;
const _: () = assert!(SEGMENT_CMSG_SPACE <= std::mem::size_of::<SegmentCmsg>());

fn segment_cmsg(segment: u16) -> SegmentCmsg {
    let mut data = [0u8; 8];
    data[..2].copy_from_slice(&segment.to_ne_bytes());
    SegmentCmsg {
        hdr: libc::cmsghdr {
            cmsg_len: SEGMENT_CMSG_LEN as _,
            cmsg_level: libc::SOL_UDP,
            cmsg_type: libc::UDP_SEGMENT,
        },
        data,
    }
}

fn empty_msghdr() -> libc::msghdr {
    // Safety: `msghdr` is a plain C struct of integers and raw pointers (plus padding on some
    // libcs); all-zero is its documented empty value (no name, no iovec, no control data).
    unsafe { std::mem::zeroed() }
}

/// The kernel-facing headers of one submission: `msghdr`s with the addresses, `iovec`s and
/// control messages they point to.
///
/// The `msghdr`s hold raw pointers into this arena and into the batch buffer. They are valid only
/// while neither changes: a backend builds them with [`MsgArena::build`], hands them to the
/// kernel, waits for every result, and only then touches the arena or the batch again.
#[derive(Default)]
pub(crate) struct MsgArena {
    addrs: Vec<(RawAddr, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<SegmentCmsg>,
    hdrs: Vec<libc::msghdr>,
}

// Safety: the raw pointers in `iovs` and `hdrs` are only dereferenced by the kernel during a
// send that the owning backend completes (every result reaped) before it returns; between sends
// they are stale values nobody reads. Moving the arena to another thread between sends is fine.
unsafe impl Send for MsgArena {}

impl MsgArena {
    /// Builds one `msghdr` per message, pointing into `buf`, and returns them. The headers stay
    /// valid until the next call to `build` or until `buf` is changed or dropped.
    pub(crate) fn build(&mut self, buf: &[u8], msgs: &[Message]) -> &mut [libc::msghdr] {
        self.addrs.clear();
        self.iovs.clear();
        self.cmsgs.clear();
        self.hdrs.clear();
        // Fill every pointed-to vector completely before taking a pointer into it.
        for m in msgs {
            self.addrs.push(raw_addr(&m.dest));
            let bytes = buf.get(m.start..m.start + m.len).unwrap_or(&[]);
            self.iovs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
            self.cmsgs.push(segment_cmsg(m.segment.unwrap_or(0)));
        }
        for (i, m) in msgs.iter().enumerate() {
            let mut hdr = empty_msghdr();
            if let (Some((addr, addr_len)), Some(iov), Some(cmsg)) = (
                self.addrs.get_mut(i),
                self.iovs.get_mut(i),
                self.cmsgs.get_mut(i),
            ) {
                hdr.msg_name = (addr as *mut RawAddr).cast();
                hdr.msg_namelen = *addr_len;
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                if m.segment.is_some() {
                    hdr.msg_control = (cmsg as *mut SegmentCmsg).cast();
                    hdr.msg_controllen = SEGMENT_CMSG_SPACE as _;
                }
            }
            self.hdrs.push(hdr);
        }
        &mut self.hdrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_uses_gso_only_for_multi_datagram_groups_within_the_limit() {
        let dest = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut out = OutDatagrams::new();
        for _ in 0..3 {
            out.push(dest, &[0; 1000]);
        }
        out.push(dest, &[0; 10]);
        out.push(dest, &[0; 300]);
        let mut msgs = Vec::new();
        let mut report = SendReport::default();

        plan(&out, &GsoState::new(true), &mut msgs, &mut report);
        let shape: Vec<(usize, Option<u16>, usize)> = msgs
            .iter()
            .map(|m| (m.len, m.segment, m.datagrams))
            .collect();
        assert_eq!(shape, vec![(3010, Some(1000), 4), (300, None, 1)]);

        plan(&out, &GsoState::new(false), &mut msgs, &mut report);
        assert_eq!(msgs.len(), 5);
        assert!(msgs.iter().all(|m| m.segment.is_none() && m.datagrams == 1));

        let mut gso = GsoState::new(true);
        assert!(gso.on_error(libc::EMSGSIZE, 1200));
        assert!(gso.on_error(libc::EINVAL, 1000));
        assert!(gso.enabled());
        plan(&out, &gso, &mut msgs, &mut report);
        assert_eq!(
            msgs.len(),
            5,
            "1000-byte segments go out plain after an MTU error"
        );
        assert!(gso.on_error(libc::EIO, 500));
        assert!(!gso.enabled());
        assert!(!gso.on_error(libc::ECONNREFUSED, 500));
        assert_eq!(report, SendReport::default());

        out.push(SocketAddr::from(([127, 0, 0, 1], 0)), &[0; 10]);
        plan(&out, &gso, &mut msgs, &mut report);
        assert_eq!(report.errors, 1, "port 0 is rejected up front");
        assert_eq!(msgs.len(), 5);
    }

    #[test]
    fn split_plain_restores_the_datagrams() {
        let dest = SocketAddr::from(([127, 0, 0, 1], 9));
        let msg = Message {
            dest,
            start: 100,
            len: 250,
            segment: Some(100),
            datagrams: 3,
        };
        let mut plain = Vec::new();
        msg.split_plain(&mut plain);
        let ranges: Vec<(usize, usize)> = plain.iter().map(|m| (m.start, m.len)).collect();
        assert_eq!(ranges, vec![(100, 100), (200, 100), (300, 50)]);
    }
}
