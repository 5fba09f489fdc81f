//! The machine's ceiling (design.md "Measuring performance"): receivers that only count what
//! arrives (`sttp-perf receive --raw`) and a sender of pre-built payloads of the size our
//! publisher produced (`sttp-perf ceiling`). Nothing here encodes, validates or decodes: it is the
//! cost of moving the same bytes through the same kernel path, measured in the same run.

use crate::cpu::CpuSample;
use crate::report::{CeilingReport, ReceiverReport};
use crate::snmp;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;
/// How often a blocked receiver looks at the phase.
const POLL: Duration = Duration::from_millis(100);
/// Receive buffer of each raw UDP socket (as the subscriber's data channel).
const RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// Which kernel path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawTransport {
    Tcp,
    Udp,
}

/// Counters shared by the raw receiver threads.
#[derive(Debug, Default)]
struct Counts {
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// Raw receiver settings: `subscribers` sockets starting at `base` (UDP: one port each; TCP: one
/// listener on `base` accepting that many connections). Port 0 in `base`: every socket binds a
/// port of the kernel's choosing, and `receive` hands the bound addresses to its `ready`
/// callback (so whoever sends learns them from the process that holds them).
#[derive(Debug, Clone)]
pub struct RawReceiveOpts {
    pub transport: RawTransport,
    pub base: SocketAddr,
    pub subscribers: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub sender_pid: Option<u32>,
}

/// Binds the sockets, calls `ready` with their bound addresses (UDP: one per subscriber; TCP:
/// the listener), counts through the window and reports.
pub fn receive(
    opts: &RawReceiveOpts,
    ready: impl FnOnce(&[SocketAddr]),
) -> anyhow::Result<ReceiverReport> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let counts = Arc::new(Counts::default());
    let snmp_before = snmp::udp_rcvbuf_errors();
    let mut threads = Vec::new();
    let mut bound = Vec::new();
    match opts.transport {
        RawTransport::Udp => {
            for k in 0..opts.subscribers {
                let mut addr = opts.base;
                if addr.port() != 0 {
                    let port = u16::try_from(u32::from(addr.port()) + k)
                        .map_err(|_| anyhow::anyhow!("UDP port range past 65535"))?;
                    addr.set_port(port);
                }
                let socket = bind_udp(addr)?;
                bound.push(socket.local_addr()?);
                let (phase, counts) = (phase.clone(), counts.clone());
                threads.push(std::thread::spawn(move || {
                    udp_count(&socket, &phase, &counts)
                }));
            }
        }
        RawTransport::Tcp => {
            let listener = TcpListener::bind(opts.base)
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.base))?;
            bound.push(listener.local_addr()?);
            let (phase, counts) = (phase.clone(), counts.clone());
            let n = opts.subscribers;
            threads.push(std::thread::spawn(move || {
                let mut conns = Vec::new();
                for _ in 0..n {
                    let Ok((stream, _)) = listener.accept() else {
                        break;
                    };
                    let (phase, counts) = (phase.clone(), counts.clone());
                    conns.push(std::thread::spawn(move || {
                        tcp_count(stream, &phase, &counts)
                    }));
                }
                for c in conns {
                    let _ = c.join();
                }
            }));
        }
    }
    ready(&bound);
    std::thread::sleep(opts.warmup);
    let (m0, b0) = (
        counts.messages.load(Ordering::SeqCst),
        counts.bytes.load(Ordering::SeqCst),
    );
    let sender_start = opts.sender_pid.and_then(|p| CpuSample::take(Some(p)));
    let own_start = CpuSample::take(None);
    let window_start = Instant::now();
    phase.store(MEASURING, Ordering::SeqCst);
    std::thread::sleep(opts.duration);
    phase.store(DONE, Ordering::SeqCst);
    let window_secs = window_start.elapsed().as_secs_f64();
    let (m1, b1) = (
        counts.messages.load(Ordering::SeqCst),
        counts.bytes.load(Ordering::SeqCst),
    );
    let sender_end = opts.sender_pid.and_then(|p| CpuSample::take(Some(p)));
    let own_end = CpuSample::take(None);
    // TCP connection threads end when the sender closes; UDP threads at the next poll. Do not
    // wait for a sender that never connected.
    if opts.transport == RawTransport::Udp {
        for t in threads {
            let _ = t.join();
        }
    }
    Ok(ReceiverReport {
        transport: match opts.transport {
            RawTransport::Tcp => "tcp",
            RawTransport::Udp => "udp",
        }
        .into(),
        subscribers: opts.subscribers,
        window_secs,
        datagrams: m1 - m0,
        bytes: b1 - b0,
        publisher_cpu_percent: sender_start
            .zip(sender_end)
            .map(|(a, b)| a.percent_until(&b)),
        receiver_cpu_percent: own_start.zip(own_end).map(|(a, b)| a.percent_until(&b)),
        host_rcvbuf_errors: snmp_before
            .zip(snmp::udp_rcvbuf_errors())
            .map(|(a, b)| b.saturating_sub(a)),
        ..ReceiverReport::default()
    })
}

/// A UDP socket with the same large receive buffer the subscriber's data channel asks for, so
/// the ceiling and our subscribers lose datagrams to the same limits.
fn bind_udp(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket
        .bind(&addr.into())
        .map_err(|e| anyhow::anyhow!("cannot bind UDP {addr}: {e}"))?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

fn udp_count(socket: &UdpSocket, phase: &AtomicU8, counts: &Counts) {
    let mut buf = vec![0u8; 65_536];
    while phase.load(Ordering::Relaxed) != DONE {
        if let Ok(n) = socket.recv(&mut buf) {
            counts.messages.fetch_add(1, Ordering::Relaxed);
            counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

fn tcp_count(mut stream: TcpStream, phase: &AtomicU8, counts: &Counts) {
    let _ = stream.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 256 * 1024];
    while phase.load(Ordering::Relaxed) != DONE {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                counts.messages.fetch_add(1, Ordering::Relaxed);
                counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
}

/// Ceiling sender settings.
#[derive(Debug, Clone)]
pub struct CeilingOpts {
    pub transport: RawTransport,
    /// Destinations: UDP sends to each (a single one with `subscribers` > 1 means that many
    /// consecutive ports from it); TCP opens `subscribers` connections to the first.
    pub dests: Vec<SocketAddr>,
    pub subscribers: u32,
    /// Payload size of one datagram / one write.
    pub size: usize,
    pub seconds: Duration,
}

/// A payload of `size` bytes that is not all zeros (nothing on the path may shortcut it).
fn payload(size: usize) -> Vec<u8> {
    (0..size.max(1))
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect()
}

/// Sends pre-built payloads as fast as possible for `seconds`.
pub fn ceiling(opts: &CeilingOpts) -> anyhow::Result<CeilingReport> {
    match opts.transport {
        RawTransport::Tcp => tcp_ceiling(opts),
        RawTransport::Udp => crate::udp_ceiling::run(opts),
    }
}

/// One writer thread per connection, each writing the same pre-built buffer in a loop: the
/// fastest way to push bytes through loopback TCP (one `write` per payload, like a publisher
/// writing whole DataPacket frames).
fn tcp_ceiling(opts: &CeilingOpts) -> anyhow::Result<CeilingReport> {
    let data = Arc::new(payload(opts.size));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let cpu_start = CpuSample::take(None);
    let start = Instant::now();
    let mut threads = Vec::new();
    let dest = *opts
        .dests
        .first()
        .ok_or_else(|| anyhow::anyhow!("no destination"))?;
    for _ in 0..opts.subscribers.max(1) {
        let mut stream = TcpStream::connect(dest)
            .map_err(|e| anyhow::anyhow!("cannot connect to {dest}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (data, stop, counts) = (data.clone(), stop.clone(), counts.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&data).is_err() {
                    break;
                }
                counts.messages.fetch_add(1, Ordering::Relaxed);
                counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    std::thread::sleep(opts.seconds);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(CeilingReport {
        transport: "tcp".into(),
        backend: "tcp-write".into(),
        gso: false,
        size: data.len(),
        sent: counts.messages.load(Ordering::SeqCst),
        bytes: counts.bytes.load(Ordering::SeqCst),
        seconds,
        cpu_percent: cpu_start
            .zip(CpuSample::take(None))
            .map_or(0.0, |(a, b)| a.percent_until(&b)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_ceiling_bytes_reach_the_raw_receiver() {
        let opts = RawReceiveOpts {
            transport: RawTransport::Tcp,
            base: "127.0.0.1:0".parse().unwrap(),
            subscribers: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(600),
            sender_pid: None,
        };
        // The receiver binds port 0 itself and reports the address it holds.
        let (tx, rx) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn(move || receive(&opts, |a| tx.send(a.to_vec()).unwrap()));
        let addrs = rx.recv().unwrap();
        assert_eq!(addrs.len(), 1);
        assert_ne!(addrs[0].port(), 0);
        let sent = ceiling(&CeilingOpts {
            transport: RawTransport::Tcp,
            dests: addrs,
            subscribers: 1,
            size: 1400,
            seconds: Duration::from_millis(400),
        })
        .unwrap();
        let got = receiver.join().unwrap().unwrap();
        assert!(sent.sent > 0 && sent.bytes == sent.sent * 1400);
        assert!(got.bytes > 0, "receiver counted nothing");
        assert!(got.bytes <= sent.bytes, "{} > {}", got.bytes, sent.bytes);
    }
}
