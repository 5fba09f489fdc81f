//! A small seeded userspace UDP proxy for the faults the kernel here cannot make (no `netem`,
//! test-plan.md §3.2): per datagram it decides, with full view of the bytes, to drop, forward,
//! duplicate, or add an altered copy (bit flip, truncation, garbage, a valid-looking header with a
//! random body). It captures every clean datagram it saw, so a test can replay them later, to the
//! same or another port, and decode them independently as an oracle.
//!
//! Altered copies are sent *in addition* to the original, and *before* it: an authenticated
//! receiver must reject the copy without disturbing its acceptance of the original (a replay
//! window advanced before authentication would then reject the original, which shows up as a gap).
//!
//! Getting between publisher and subscriber on loopback: the STTP publisher sends the data channel
//! to `(TCP peer IP, localport)` from the Subscribe connection string (wire.md §8), and the
//! subscriber binds that port itself. [`TcpRelay`] therefore relays the command channel and
//! rewrites `localport=N` to the proxy's port (same number of digits, so no frame length
//! changes); the proxy forwards to the subscriber's real port N. With
//! [`TcpRelay::redirect_data_channel`] the relay learns N from the subscribe request itself and
//! points the proxy at it, so the subscriber can bind a port of the kernel's choosing (port 0)
//! and the test never picks a port and releases it for someone else to bind.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Probabilities (0..=1) of what happens to each datagram, all decided independently from the
/// seeded generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultPlan {
    /// The original is not forwarded (iid loss).
    pub drop: f64,
    /// An identical copy follows the original at once.
    pub duplicate: f64,
    /// A copy with one random bit flipped goes before the original.
    pub bit_flip: f64,
    /// A copy cut to a random shorter length goes before the original.
    pub truncate: f64,
    /// A datagram of random bytes (random length up to the original's) goes before the original.
    pub garbage: f64,
    /// A copy keeping the first 8 bytes (the header) with a random body goes before the original.
    pub spoof: f64,
    /// Whether clean datagrams are kept for [`UdpProxy::captured`] (at most `capture_limit`).
    pub capture: bool,
    pub capture_limit: usize,
}

/// What the proxy did, counted per action.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub received: AtomicU64,
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub bit_flipped: AtomicU64,
    pub truncated: AtomicU64,
    pub garbage: AtomicU64,
    pub spoofed: AtomicU64,
    pub replayed: AtomicU64,
    pub send_errors: AtomicU64,
}

impl ProxyCounters {
    fn count(&self, kind: Alteration) {
        let counter = match kind {
            Alteration::BitFlip => &self.bit_flipped,
            Alteration::Truncate => &self.truncated,
            Alteration::Garbage => &self.garbage,
            Alteration::Spoof => &self.spoofed,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// A copy of [`ProxyCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub bit_flipped: u64,
    pub truncated: u64,
    pub garbage: u64,
    pub spoofed: u64,
    pub replayed: u64,
    pub send_errors: u64,
}

impl ProxyStats {
    /// Altered datagrams sent (each must be rejected by an authenticating receiver).
    pub fn altered(&self) -> u64 {
        self.bit_flipped + self.truncated + self.garbage + self.spoofed
    }
}

/// splitmix64: a tiny seeded generator, so a failing run is reproduced from its printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The altered copies `plan` asks for, in sending order, each with the counter it increments.
fn alterations(plan: &FaultPlan, rng: &mut Rng, clean: &[u8]) -> Vec<(Vec<u8>, Alteration)> {
    let mut out = Vec::new();
    if clean.is_empty() {
        return out;
    }
    if rng.chance(plan.bit_flip) {
        let mut d = clean.to_vec();
        let bit = rng.below(d.len() * 8);
        d[bit / 8] ^= 1 << (bit % 8);
        out.push((d, Alteration::BitFlip));
    }
    if rng.chance(plan.truncate) && clean.len() > 1 {
        let len = 1 + rng.below(clean.len() - 1);
        out.push((clean[..len].to_vec(), Alteration::Truncate));
    }
    if rng.chance(plan.garbage) {
        let len = 1 + rng.below(clean.len());
        let d = (0..len).map(|_| rng.next_u64() as u8).collect();
        out.push((d, Alteration::Garbage));
    }
    if rng.chance(plan.spoof) && clean.len() > 8 {
        let mut d = clean.to_vec();
        for b in &mut d[8..] {
            *b = rng.next_u64() as u8;
        }
        out.push((d, Alteration::Spoof));
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Alteration {
    BitFlip,
    Truncate,
    Garbage,
    Spoof,
}

/// The running proxy: receives on its own port, forwards to `target`.
pub struct UdpProxy {
    socket: UdpSocket,
    target: Arc<Mutex<SocketAddr>>,
    counters: Arc<ProxyCounters>,
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    plan: Arc<Mutex<FaultPlan>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpProxy {
    /// Binds `listen` (port 0 for any) and starts forwarding to `target` under `plan`. A target
    /// with port 0 means "not known yet": datagrams are then counted as send errors until
    /// [`UdpProxy::set_target`] names it.
    pub fn start(
        listen: SocketAddr,
        target: SocketAddr,
        plan: FaultPlan,
        seed: u64,
    ) -> Result<Self> {
        let socket = UdpSocket::bind(listen).with_context(|| format!("proxy bind {listen}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        // A roomy receive buffer, so that bursts on a busy host are not lost before the proxy
        // decides about them (its counters would then disagree with what was sent).
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(8 * 1024 * 1024);
        let counters = Arc::new(ProxyCounters::default());
        let captured = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(Mutex::new(plan));
        let stop = Arc::new(AtomicBool::new(false));
        let target = Arc::new(Mutex::new(target));
        let (s, t, c, cap, p, st) = (
            socket.try_clone()?,
            target.clone(),
            counters.clone(),
            captured.clone(),
            plan.clone(),
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("udp-proxy".into())
            .spawn(move || forward_loop(&s, &t, &c, &cap, &p, &st, Rng::new(seed)))?;
        Ok(Self {
            socket,
            target,
            counters,
            captured,
            plan,
            stop,
            thread: Some(thread),
        })
    }

    /// The proxy's own address (where the publisher must send).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    /// Forwards the datagrams that follow to `target`.
    pub fn set_target(&self, target: SocketAddr) {
        if let Ok(mut t) = self.target.lock() {
            *t = target;
        }
    }

    /// Where the proxy forwards now.
    pub fn target(&self) -> SocketAddr {
        *self.target.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the plan for the datagrams that follow.
    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.plan.lock() {
            *p = plan;
        }
    }

    /// Every clean datagram captured so far, in arrival order.
    pub fn captured(&self) -> Vec<Vec<u8>> {
        self.captured.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Sends `datagrams` to `to` from the proxy's socket (replays, injections); counted as
    /// replayed. Returns the number sent.
    pub fn replay(&self, datagrams: &[Vec<u8>], to: SocketAddr) -> u64 {
        let mut sent = 0;
        for d in datagrams {
            if self.socket.send_to(d, to).is_ok() {
                sent += 1;
            } else {
                self.counters.send_errors.fetch_add(1, Relaxed);
            }
        }
        self.counters.replayed.fetch_add(sent, Relaxed);
        sent
    }

    /// Sends `count` crafted datagrams to `to`, at most `rate` per second: in turn a bit flip,
    /// a truncation, random garbage and a header-spoofed body, each derived from the next of
    /// `base` (captured clean datagrams). Counted like the proxy's own altered copies; returns
    /// the number sent.
    pub fn flood(&self, base: &[Vec<u8>], count: u64, rate: u64, to: SocketAddr, seed: u64) -> u64 {
        let mut rng = Rng::new(seed);
        let kinds = [
            FaultPlan {
                bit_flip: 1.0,
                ..FaultPlan::default()
            },
            FaultPlan {
                truncate: 1.0,
                ..FaultPlan::default()
            },
            FaultPlan {
                garbage: 1.0,
                ..FaultPlan::default()
            },
            FaultPlan {
                spoof: 1.0,
                ..FaultPlan::default()
            },
        ];
        let start = std::time::Instant::now();
        let mut sent = 0;
        for i in 0..count {
            let Some(clean) = base.get(i as usize % base.len().max(1)) else {
                break;
            };
            let due = start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            for (d, kind) in alterations(&kinds[i as usize % kinds.len()], &mut rng, clean) {
                if self.socket.send_to(&d, to).is_err() {
                    self.counters.send_errors.fetch_add(1, Relaxed);
                    continue;
                }
                self.counters.count(kind);
                sent += 1;
            }
        }
        sent
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            received: c.received.load(Relaxed),
            forwarded: c.forwarded.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            duplicated: c.duplicated.load(Relaxed),
            bit_flipped: c.bit_flipped.load(Relaxed),
            truncated: c.truncated.load(Relaxed),
            garbage: c.garbage.load(Relaxed),
            spoofed: c.spoofed.load(Relaxed),
            replayed: c.replayed.load(Relaxed),
            send_errors: c.send_errors.load(Relaxed),
        }
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward_loop(
    socket: &UdpSocket,
    target: &Mutex<SocketAddr>,
    counters: &ProxyCounters,
    captured: &Mutex<Vec<Vec<u8>>>,
    plan: &Mutex<FaultPlan>,
    stop: &AtomicBool,
    mut rng: Rng,
) {
    let mut buf = vec![0u8; 65536];
    let send = |d: &[u8], to: SocketAddr| {
        if to.port() == 0 || socket.send_to(d, to).is_err() {
            counters.send_errors.fetch_add(1, Relaxed);
        }
    };
    while !stop.load(Relaxed) {
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(_) => continue, // read timeout: look at the stop flag again
        };
        let clean = &buf[..n];
        counters.received.fetch_add(1, Relaxed);
        let plan = plan.lock().map(|p| *p).unwrap_or_default();
        let to = *target.lock().unwrap_or_else(|e| e.into_inner());
        if plan.capture {
            if let Ok(mut c) = captured.lock() {
                if c.len() < plan.capture_limit {
                    c.push(clean.to_vec());
                }
            }
        }
        for (d, kind) in alterations(&plan, &mut rng, clean) {
            send(&d, to);
            counters.count(kind);
        }
        if rng.chance(plan.drop) {
            counters.dropped.fetch_add(1, Relaxed);
            continue;
        }
        send(clean, to);
        counters.forwarded.fetch_add(1, Relaxed);
        if rng.chance(plan.duplicate) {
            send(clean, to);
            counters.duplicated.fetch_add(1, Relaxed);
        }
    }
}

/// Relays one TCP command channel between a subscriber and the publisher, rewriting frames from
/// the subscriber: fixed byte patterns of equal length ([`TcpRelay::start`]), or the data-channel
/// port of every subscribe request ([`TcpRelay::redirect_data_channel`]).
pub struct TcpRelay {
    listener_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    data_ports: Arc<Mutex<Vec<u16>>>,
    thread: Option<JoinHandle<()>>,
}

/// Rewrites one frame body from the subscriber in place (its length must not change); gets the
/// subscriber's IP address.
type Rewrite = dyn Fn(&mut [u8], IpAddr) + Send + Sync;

impl TcpRelay {
    /// Listens on an ephemeral loopback port and relays every connection to `upstream`.
    /// `replace` lists `(from, to)` byte strings of equal length.
    pub fn start(upstream: SocketAddr, replace: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self> {
        anyhow::ensure!(
            replace
                .iter()
                .all(|(a, b)| a.len() == b.len() && !a.is_empty()),
            "replacements must keep the length (frame lengths are not rewritten)"
        );
        let rewrite = move |body: &mut [u8], _: IpAddr| {
            for (from, to) in &replace {
                replace_all(body, from, to);
            }
        };
        Self::start_with(upstream, Arc::new(rewrite), Arc::default())
    }

    /// Listens on an ephemeral loopback port and relays every connection to `upstream`,
    /// replacing the port of `localport=N` (UTF-8 or UTF-16LE) in each subscribe request by the
    /// proxy's own port and pointing the proxy at `(subscriber IP, N)`. The subscriber may so
    /// bind any port, port 0 included; the ports seen are in [`TcpRelay::data_ports`]. A proxy
    /// port with fewer digits than N is written with leading zeros; one with more digits cannot
    /// be written without changing the frame length, and that request passes unchanged (the
    /// data then bypasses the proxy, which a test notices).
    pub fn redirect_data_channel(upstream: SocketAddr, proxy: Arc<UdpProxy>) -> Result<Self> {
        let proxy_port = proxy.local_addr()?.port();
        let seen: Arc<Mutex<Vec<u16>>> = Arc::default();
        let ports = seen.clone();
        let rewrite = move |body: &mut [u8], ip: IpAddr| {
            for port in rewrite_local_port(body, proxy_port) {
                proxy.set_target(SocketAddr::new(ip, port));
                if let Ok(mut p) = ports.lock() {
                    p.push(port);
                }
            }
        };
        Self::start_with(upstream, Arc::new(rewrite), seen)
    }

    fn start_with(
        upstream: SocketAddr,
        rewrite: Arc<Rewrite>,
        data_ports: Arc<Mutex<Vec<u16>>>,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let listener_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tcp-relay".into())
            .spawn(move || {
                while !st.load(Relaxed) {
                    match listener.accept() {
                        Ok((down, _)) => {
                            let (r, s) = (rewrite.clone(), st.clone());
                            let _ = std::thread::Builder::new()
                                .name("tcp-relay-conn".into())
                                .spawn(move || relay_connection(down, upstream, &*r, &s));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })?;
        Ok(Self {
            listener_addr,
            stop,
            data_ports,
            thread: Some(thread),
        })
    }

    /// Where subscribers connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener_addr
    }

    /// The data-channel ports named by the subscribe requests that passed (redirecting relay).
    pub fn data_ports(&self) -> Vec<u16> {
        self.data_ports
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn relay_connection(down: TcpStream, upstream: SocketAddr, rewrite: &Rewrite, stop: &AtomicBool) {
    let Ok(up) = TcpStream::connect(upstream) else {
        return;
    };
    let Ok(peer) = down.peer_addr() else {
        return;
    };
    let _ = down.set_nonblocking(false);
    let _ = (down.set_nodelay(true), up.set_nodelay(true));
    let (Ok(mut down_r), Ok(mut up_w)) = (down.try_clone(), up.try_clone()) else {
        return;
    };
    // Publisher → subscriber: bytes as they come.
    let (mut up_r, mut down_w) = (up, down);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut down_w);
        let _ = down_w.shutdown(Shutdown::Both);
    });
    // Subscriber → publisher: frame by frame (u32 big-endian length, then the body).
    let _ = down_r.set_read_timeout(Some(Duration::from_millis(100)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 16384];
    while !stop.load(Relaxed) {
        match down_r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        }
        while pending.len() >= 4 {
            let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
            if pending.len() < 4 + len {
                break;
            }
            let mut frame: Vec<u8> = pending.drain(..4 + len).collect();
            rewrite(&mut frame[4..], peer.ip());
            if up_w.write_all(&frame).is_err() {
                return;
            }
        }
    }
    let _ = up_w.shutdown(Shutdown::Both);
    let _ = back.join();
}

/// Replaces the digits after every `localport=` (UTF-8, and UTF-16LE with its zero high bytes)
/// in `hay` by `to`, keeping the length (leading zeros pad a shorter `to`; a longer one leaves
/// that occurrence alone). Returns the ports found, in order.
pub fn rewrite_local_port(hay: &mut [u8], to: u16) -> Vec<u16> {
    let mut found = Vec::new();
    for width in [1usize, 2] {
        let key: Vec<u8> = if width == 1 {
            b"localport=".to_vec()
        } else {
            utf16le("localport=")
        };
        let mut i = 0;
        while i + key.len() <= hay.len() {
            if !hay[i..i + key.len()].eq_ignore_ascii_case(&key) {
                i += 1;
                continue;
            }
            let start = i + key.len();
            let mut end = start;
            while end + width <= hay.len()
                && hay[end].is_ascii_digit()
                && hay[end + 1..end + width].iter().all(|&b| b == 0)
            {
                end += width;
            }
            let digits: String = hay[start..end]
                .iter()
                .step_by(width)
                .map(|&b| b as char)
                .collect();
            if let Ok(port) = digits.parse::<u16>() {
                let text = format!("{to:0n$}", n = digits.len());
                if text.len() == digits.len() {
                    for (k, c) in text.bytes().enumerate() {
                        hay[start + k * width] = c;
                    }
                    found.push(port);
                }
            }
            i = end.max(i + 1);
        }
    }
    found
}

/// Replaces every occurrence of `from` by `to` (same length) in place.
pub fn replace_all(hay: &mut [u8], from: &[u8], to: &[u8]) {
    let mut i = 0;
    while i + from.len() <= hay.len() {
        if &hay[i..i + from.len()] == from {
            hay[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
}

/// `text` as UTF-16 little endian (the other string encoding a connection string may use).
pub fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions() {
        let plan = FaultPlan {
            bit_flip: 0.3,
            truncate: 0.3,
            garbage: 0.3,
            spoof: 0.3,
            ..FaultPlan::default()
        };
        let clean: Vec<u8> = (0..100).collect();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .flat_map(|_| alterations(&plan, &mut rng, &clean))
                .map(|(d, _)| d)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn alterations_differ_from_the_original() {
        let plan = FaultPlan {
            bit_flip: 1.0,
            truncate: 1.0,
            spoof: 1.0,
            ..FaultPlan::default()
        };
        let clean: Vec<u8> = (0..64).collect();
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let alts = alterations(&plan, &mut rng, &clean);
            assert_eq!(alts.len(), 3);
            for (d, kind) in alts {
                assert_ne!(d, clean, "{kind:?}");
                match kind {
                    Alteration::BitFlip => {
                        let bits: u32 = d
                            .iter()
                            .zip(&clean)
                            .map(|(a, b)| (a ^ b).count_ones())
                            .sum();
                        assert_eq!(bits, 1);
                    }
                    Alteration::Truncate => assert!(d.len() < clean.len() && clean.starts_with(&d)),
                    Alteration::Spoof => assert_eq!(d[..8], clean[..8]),
                    Alteration::Garbage => unreachable!(),
                }
            }
        }
    }

    #[test]
    fn chance_follows_its_probability() {
        let mut rng = Rng::new(2664);
        let m = 100_000;
        let hits = (0..m).filter(|_| rng.chance(0.2)).count() as f64 / m as f64;
        let bound = 3.0 * (0.2f64 * 0.8 / m as f64).sqrt();
        assert!((hits - 0.2).abs() <= bound, "{hits} vs 0.2 ± {bound}");
        assert!(!(0..1000).any(|_| rng.chance(0.0)));
    }

    #[test]
    fn replace_keeps_length() {
        let mut s = b"a;dataChannel={localport=41000};localport=41000".to_vec();
        replace_all(&mut s, b"localport=41000", b"localport=52311");
        assert_eq!(&s[..], b"a;dataChannel={localport=52311};localport=52311");
        assert_eq!(utf16le("ab"), vec![b'a', 0, b'b', 0]);
    }

    #[test]
    fn proxy_forwards_drops_and_replays_on_loopback() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let plan = FaultPlan {
            drop: 0.5,
            duplicate: 0.0,
            capture: true,
            capture_limit: 1000,
            ..FaultPlan::default()
        };
        let proxy = UdpProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            sink.local_addr().unwrap(),
            plan,
            9,
        )
        .unwrap();
        let src = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..200u32 {
            src.send_to(&i.to_be_bytes(), proxy.local_addr().unwrap())
                .unwrap();
            if i % 20 == 19 {
                // Paced, so the loopback burst fits the proxy's buffer on a loaded host.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok(n) = sink.recv(&mut buf) {
            got.push(buf[..n].to_vec());
            if got.len() as u64 == proxy.stats().forwarded && proxy.stats().received == 200 {
                break;
            }
        }
        let s = proxy.stats();
        assert_eq!(s.received, 200);
        assert_eq!(s.forwarded + s.dropped, 200);
        assert!(s.dropped > 50 && s.dropped < 150, "{s:?}");
        assert_eq!(got.len() as u64, s.forwarded);
        let cap = proxy.captured();
        assert_eq!(cap.len(), 200);
        assert_eq!(proxy.replay(&cap[..10], sink.local_addr().unwrap()), 10);
        for want in &cap[..10] {
            let n = sink.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &want[..]);
        }
        assert_eq!(proxy.stats().replayed, 10);
    }

    #[test]
    fn local_port_is_rewritten_in_both_encodings_keeping_the_length() {
        let text = "x;dataChannel={localport=41234};y";
        let mut utf8 = text.as_bytes().to_vec();
        assert_eq!(rewrite_local_port(&mut utf8, 50001), vec![41234]);
        assert_eq!(utf8, text.replace("41234", "50001").into_bytes());
        let mut wide = utf16le(text);
        assert_eq!(rewrite_local_port(&mut wide, 999), vec![41234]);
        assert_eq!(wide, utf16le(&text.replace("41234", "00999")));
        // A longer port cannot be written: left alone, not reported.
        let mut short = b"localport=99;".to_vec();
        assert!(rewrite_local_port(&mut short, 50001).is_empty());
        assert_eq!(short, b"localport=99;");
    }
}
