//! The two UDP send backends against real loopback receivers: every datagram arrives with its
//! exact bytes, in order per destination, with GSO on and off; errors and closed ports neither
//! panic nor stall.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use sttp_dataplane::io::{
    self, BackendChoice, BackendKind, BackendOptions, OutDatagrams, SendReport,
};

/// Datagrams per backend run.
const DATAGRAMS: usize = 3000;
/// A burst is sent, then fully received, before the next one: the receivers' buffers never fill.
const BURST_DATAGRAMS: usize = 300;
const BURST_BYTES: usize = 1 << 20;
const RECV_BUFFER: i32 = 16 << 20;

/// xorshift64*: deterministic traffic without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn receiver(bind: &str) -> Option<UdpSocket> {
    let socket = UdpSocket::bind(bind).ok()?;
    let fd = socket.as_raw_fd();
    let len = std::mem::size_of::<i32>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // Safety: `RECV_BUFFER` is a live i32 of `len` bytes; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&RECV_BUFFER as *const i32).cast(),
                len,
            )
        };
        if rc == 0 {
            break;
        }
    }
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    Some(socket)
}

/// `Udp: ... RcvbufErrors` from /proc/net/snmp: host drops, to tell them apart from ours.
fn rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// A datagram's bytes: destination index, global sequence number, then a pattern of both.
fn datagram(dest: usize, seq: u32, len: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(len);
    d.push(dest as u8);
    d.extend_from_slice(&seq.to_le_bytes());
    while d.len() < len {
        d.push((seq as usize).wrapping_mul(31).wrapping_add(d.len()) as u8);
    }
    d.truncate(len.max(5));
    d
}

/// Runs of equal-length datagrams to one destination (some longer than a GSO group), some closed
/// by a shorter tail, interleaved with single datagrams of random length.
fn traffic(dests: usize, seed: u64) -> Vec<(usize, Vec<u8>)> {
    const LENGTHS: [usize; 8] = [5, 20, 100, 1200, 1400, 1472, 8972, 20_000];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(DATAGRAMS);
    let mut seq = 0u32;
    while out.len() < DATAGRAMS {
        let dest = rng.below(dests as u64) as usize;
        let (len, run) = if rng.below(4) == 0 {
            (5 + rng.below(3000) as usize, 1)
        } else {
            (
                LENGTHS[rng.below(LENGTHS.len() as u64) as usize],
                1 + rng.below(90) as usize,
            )
        };
        for _ in 0..run {
            out.push((dest, datagram(dest, seq, len)));
            seq += 1;
        }
        if rng.below(3) == 0 && len > 5 {
            out.push((
                dest,
                datagram(dest, seq, 5 + rng.below(len as u64 - 5) as usize),
            ));
            seq += 1;
        }
    }
    out.truncate(DATAGRAMS);
    out
}

/// Receives exactly `want` datagrams on `socket`.
fn receive(socket: &UdpSocket, want: usize, into: &mut Vec<Vec<u8>>) {
    let mut buf = vec![0u8; 65_536];
    for i in 0..want {
        match socket.recv(&mut buf) {
            Ok(n) => into.push(buf[..n].to_vec()),
            Err(e) => panic!(
                "receiver {:?}: got {i} of {want} datagrams of this burst: {e} (host RcvbufErrors now {:?})",
                socket.local_addr(),
                rcvbuf_errors()
            ),
        }
    }
}

fn open(choice: BackendChoice, gso: bool) -> Box<dyn io::UdpBackend> {
    io::open(&BackendOptions {
        choice,
        gso,
        ..BackendOptions::default()
    })
    .unwrap_or_else(|e| panic!("opening {choice} (gso {gso}): {e}"))
}

fn round_trip(choice: BackendChoice, kind: BackendKind, gso: bool) {
    let mut receivers: Vec<UdpSocket> = vec![
        receiver("127.0.0.1:0").unwrap(),
        receiver("127.0.0.1:0").unwrap(),
    ];
    // IPv6 goes out on the other socket; use it where the host has ::1.
    if let Some(v6) = receiver("[::1]:0") {
        receivers.push(v6);
    }
    let addrs: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let mut backend = open(choice, gso);
    assert_eq!(backend.kind(), kind);
    assert_eq!(backend.gso(), gso, "loopback supports GSO on this kernel");

    let traffic = traffic(receivers.len(), 0x5eed ^ u64::from(gso));
    let mut received: Vec<Vec<Vec<u8>>> = vec![Vec::new(); receivers.len()];
    let mut total = SendReport::default();
    let mut out = OutDatagrams::new();
    let mut burst = vec![0usize; receivers.len()];
    let mut groups = 0;
    let host_drops_before = rcvbuf_errors();
    for (i, (dest, bytes)) in traffic.iter().enumerate() {
        out.push(addrs[*dest], bytes);
        burst[*dest] += 1;
        let last = i + 1 == traffic.len();
        if last || out.datagrams() >= BURST_DATAGRAMS || out.bytes() >= BURST_BYTES {
            groups += out.groups().len();
            let datagrams = out.datagrams() as u64;
            let bytes = out.bytes() as u64;
            let report = backend.send(&mut out);
            assert!(out.is_empty(), "send clears the batch");
            assert_eq!(
                (
                    report.datagrams,
                    report.bytes,
                    report.would_block,
                    report.errors
                ),
                (datagrams, bytes, 0, 0),
                "{report:?}"
            );
            total += report;
            for (r, want) in burst.iter_mut().enumerate() {
                receive(&receivers[r], *want, &mut received[r]);
                *want = 0;
            }
        }
    }
    assert_eq!(total.datagrams, DATAGRAMS as u64);
    // Batched: one call takes many messages (64 per sendmmsg, a ring's worth per enter).
    assert!(
        total.submissions * 8 <= DATAGRAMS as u64,
        "{} submissions for {DATAGRAMS} datagrams",
        total.submissions
    );
    assert!(groups < DATAGRAMS / 4, "the traffic has real GSO groups");

    // Exact content and order per destination.
    for (r, got) in received.iter().enumerate() {
        let want: Vec<&Vec<u8>> = traffic
            .iter()
            .filter(|(d, _)| *d == r)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(got.len(), want.len(), "receiver {r} count");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == *w,
                "receiver {r}, datagram {k}: got {} bytes (seq {:?}), want {} bytes (seq {:?}); host drops {:?} -> {:?}",
                g.len(),
                g.get(1..5),
                w.len(),
                w.get(1..5),
                host_drops_before,
                rcvbuf_errors()
            );
        }
    }
    // Nothing more arrives.
    for r in &receivers {
        r.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert!(r.recv(&mut buf).is_err(), "an extra datagram arrived");
    }
}

#[test]
fn sendmmsg_with_gso_delivers_everything_in_order() {
    round_trip(BackendChoice::Sendmmsg, BackendKind::Sendmmsg, true);
}

#[test]
fn sendmmsg_without_gso_delivers_everything_in_order() {
    round_trip(BackendChoice::Sendmmsg, BackendKind::Sendmmsg, false);
}

#[test]
fn io_uring_with_gso_delivers_everything_in_order() {
    round_trip(BackendChoice::IoUring, BackendKind::IoUring, true);
}

#[test]
fn io_uring_without_gso_delivers_everything_in_order() {
    round_trip(BackendChoice::IoUring, BackendKind::IoUring, false);
}

fn io_uring_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

#[test]
fn auto_opens_a_working_backend() {
    let mut backend = open(BackendChoice::Auto, true);
    if io_uring_allowed() {
        assert_eq!(backend.kind(), BackendKind::IoUring);
    }
    let rx = receiver("127.0.0.1:0").unwrap();
    let mut out = OutDatagrams::new();
    for seq in 0..10 {
        out.push(rx.local_addr().unwrap(), &datagram(0, seq, 700));
    }
    let report = backend.send(&mut out);
    assert_eq!(report.datagrams, 10, "{report:?}");
    let mut got = Vec::new();
    receive(&rx, 10, &mut got);
    assert_eq!(got[9], datagram(0, 9, 700));
}

/// Closed ports and invalid destinations: counted, no panic, no stall, and the datagrams to a
/// live receiver in the same batch still arrive.
#[test]
fn bad_destinations_do_not_panic_or_stall() {
    // A port that behaves as closed and stays ours: a socket connected to itself accepts
    // datagrams only from itself, so the kernel answers everything else as for a closed port,
    // and no other test can bind the port meanwhile (a released port could be taken and then
    // receive these datagrams).
    let closed_holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = closed_holder.local_addr().unwrap();
    closed_holder.connect(closed).unwrap();
    let port_zero = SocketAddr::from(([127, 0, 0, 1], 0));
    let live = receiver("127.0.0.1:0").unwrap();
    let live_addr = live.local_addr().unwrap();
    for choice in [BackendChoice::Sendmmsg, BackendChoice::IoUring] {
        for gso in [true, false] {
            let mut backend = open(choice, gso);
            let started = Instant::now();
            let mut total = SendReport::default();
            for round in 0..5u32 {
                let mut out = OutDatagrams::new();
                for i in 0..100 {
                    out.push(closed, &datagram(1, i, 1000));
                }
                for i in 0..3 {
                    out.push(port_zero, &datagram(2, i, 1000));
                }
                out.push(live_addr, &datagram(0, round, 64));
                total += backend.send(&mut out);
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{choice}/{gso} stalled"
            );
            assert_eq!(total.errors, 15, "port 0: {choice}/{gso} {total:?}");
            assert_eq!(
                total.datagrams + total.errors + total.would_block,
                5 * 104,
                "{choice}/{gso} {total:?}"
            );
            let mut got = Vec::new();
            receive(&live, 5, &mut got);
            let want: Vec<Vec<u8>> = (0..5).map(|r| datagram(0, r, 64)).collect();
            assert_eq!(got, want, "{choice}/{gso}");
            // GSO survives errors that are not about GSO.
            assert_eq!(backend.gso(), gso, "{choice}");
        }
    }
}

/// The per-destination order check above relies on the receivers; this one checks the batch
/// model itself against the traffic generator, so a grouping bug cannot hide in both.
#[test]
fn batch_iteration_matches_what_was_pushed() {
    let addrs: Vec<SocketAddr> = (1..=3)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let traffic = traffic(3, 7);
    let mut out = OutDatagrams::new();
    for (d, b) in &traffic {
        out.push(addrs[*d], b);
    }
    let got: Vec<(SocketAddr, &[u8])> = out.iter().collect();
    assert_eq!(got.len(), traffic.len());
    let mut per_dest: HashMap<SocketAddr, usize> = HashMap::new();
    for ((addr, bytes), (d, want)) in got.iter().zip(&traffic) {
        assert_eq!(*addr, addrs[*d]);
        assert_eq!(bytes, want);
        *per_dest.entry(*addr).or_default() += 1;
    }
    assert_eq!(per_dest.values().sum::<usize>(), DATAGRAMS);
    for g in out.groups() {
        assert!(g.count <= io::MAX_GROUP_SEGMENTS);
        assert!(g.count == 1 || g.len <= io::MAX_GROUP_BYTES);
    }
}

/// GSO segments over the path MTU make the kernel answer `EINVAL`: the backend resends that group
/// as plain datagrams, keeps GSO for smaller segments, and loses nothing. Runs in a private
/// network namespace (made by `unshare` on a thread of its own, gone when the thread ends) whose
/// loopback has a 1500-byte MTU.
#[test]
fn gso_over_the_mtu_falls_back_to_plain_datagrams() {
    let outcome = std::thread::spawn(|| {
        // Safety: `unshare` only changes this thread's network namespace; no memory is passed.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!("unshare: {}", std::io::Error::last_os_error()));
        }
        // Safety: `gettid` has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        let ns = format!("--net=/proc/{}/task/{tid}/ns/net", std::process::id());
        let status = std::process::Command::new("nsenter")
            .args([ns.as_str(), "ip", "link", "set", "lo", "mtu", "1500", "up"])
            .status()
            .map_err(|e| format!("nsenter: {e}"))?;
        if !status.success() {
            return Err(format!("nsenter ip link: {status}"));
        }
        for choice in [BackendChoice::Sendmmsg, BackendChoice::IoUring] {
            let rx = receiver("127.0.0.1:0").unwrap();
            let dest = rx.local_addr().unwrap();
            let mut backend = open(choice, true);
            let mut out = OutDatagrams::new();
            let mut want = Vec::new();
            // Turn 1: 3000-byte segments (over the MTU: EINVAL, then plain and fragmented).
            // Turn 2: 1400-byte segments, still with GSO.
            for (turn, len) in [(0u32, 3000usize), (1, 1400)] {
                for i in 0..10 {
                    let d = datagram(0, turn * 100 + i, len);
                    out.push(dest, &d);
                    want.push(d);
                }
                let report = backend.send(&mut out);
                assert_eq!(
                    (report.datagrams, report.errors),
                    (10, 0),
                    "{choice}: {report:?}"
                );
                assert!(backend.gso(), "{choice}: GSO stays on for smaller segments");
            }
            let mut got = Vec::new();
            receive(&rx, want.len(), &mut got);
            assert_eq!(got, want, "{choice}");

            // One batch: a new too-large segment size (2000) between two GSO groups. Every
            // datagram arrives; sendmmsg resends in place, so the order holds too.
            let mut want = Vec::new();
            for (base, len) in [(300u32, 1400usize), (400, 2000), (500, 1000)] {
                for i in 0..5 {
                    let d = datagram(0, base + i, len);
                    out.push(dest, &d);
                    want.push(d);
                }
            }
            let report = backend.send(&mut out);
            assert_eq!(
                (report.datagrams, report.errors),
                (15, 0),
                "{choice}: {report:?}"
            );
            let mut got = Vec::new();
            receive(&rx, want.len(), &mut got);
            if choice == BackendChoice::Sendmmsg {
                assert_eq!(got, want, "{choice}");
            } else {
                got.sort();
                want.sort();
                assert_eq!(got, want, "{choice}");
            }
            assert!(backend.gso());
        }
        Ok(())
    })
    .join()
    .unwrap();
    if let Err(why) = outcome {
        // Needs root (CAP_SYS_ADMIN) and nsenter/ip; say so instead of failing elsewhere.
        eprintln!("skipped: no private network namespace here ({why})");
    }
}
