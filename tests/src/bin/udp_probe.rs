//! A plain UDP sender/receiver (no STTP) for proving the fault-injection harness itself, and a
//! passive per-datagram tap: the namespace tests run it on both sides of the router
//! (`ip netns exec … udp_probe …`).
//!
//! ```text
//! udp_probe send --to ADDR --count N --rate PER_SEC [--size BYTES]
//!     -> {"sent":N,"send_errors":E}
//! udp_probe recv --bind ADDR [--expect N] [--idle-ms MS] [--max-secs S]
//!     -> "ready", then {"received":R,"distinct":D,"duplicates":X,"max_seq":M,
//!                       "gaps":G,"longest_gap":L}   (gaps: runs of missing numbers in 0..N)
//! udp_probe tap --port N [--idle-ms MS] [--max-secs S]
//!     -> "ready", then {"datagrams":D,"counts":[c1,c2,…]}
//! ```
//!
//! `send` datagrams start with their sequence number (u64, big endian). The receiver asks for an
//! 8 MiB receive buffer (test-plan.md §3.4: with it, ≤ 10 k datagrams/s lose nothing on the host)
//! and stops when nothing arrived for `idle-ms` after the first datagram, or after `max-secs`.
//!
//! `tap` opens a raw IPv4 socket, which sees a copy of every UDP datagram the namespace receives,
//! in arrival order: for each datagram to port N it records the point count of a plaintext STTP
//! DataPacket (wire.md §4 and §8: bare response `0x82`, command `0x02`, length, then flags and
//! the big-endian count), or -1 for anything else (sealed datagrams).

use anyhow::{anyhow, bail, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| anyhow!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow!("{name}: cannot parse {v:?}"))
        }
        None => default.ok_or_else(|| anyhow!("{name} is required")),
    }
}

fn send(args: &[String]) -> Result<()> {
    let to: SocketAddr = arg(args, "--to", None)?;
    let count: u64 = arg(args, "--count", None)?;
    let rate: f64 = arg(args, "--rate", None)?;
    let size: usize = arg(args, "--size", Some(64))?;
    if rate <= 0.0 || size < 8 {
        bail!("--rate must be positive and --size at least 8");
    }
    let socket = UdpSocket::bind("0.0.0.0:0").context("binding the sender")?;
    let mut buf = vec![0u8; size];
    let start = Instant::now();
    let mut errors = 0u64;
    for seq in 0..count {
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        if socket.send_to(&buf, to).is_err() {
            errors += 1;
        }
    }
    println!("{{\"sent\":{count},\"send_errors\":{errors}}}");
    Ok(())
}

fn recv(args: &[String]) -> Result<()> {
    let bind: SocketAddr = arg(args, "--bind", None)?;
    let idle = Duration::from_millis(arg(args, "--idle-ms", Some(1000))?);
    let max = Duration::from_secs(arg(args, "--max-secs", Some(30))?);
    let expect: u64 = arg(args, "--expect", Some(0))?;
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(8 << 20)?;
    socket
        .bind(&bind.into())
        .with_context(|| format!("binding {bind}"))?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    println!("ready");
    std::io::stdout().flush()?;
    let start = Instant::now();
    let mut last: Option<Instant> = None;
    let mut seen = HashSet::new();
    let (mut received, mut max_seq) = (0u64, 0u64);
    let mut buf = [0u8; 65536];
    while start.elapsed() < max && last.is_none_or(|t| t.elapsed() < idle) {
        match socket.recv(&mut buf) {
            Ok(n) if n >= 8 => {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&buf[..8]);
                let seq = u64::from_be_bytes(seq);
                received += 1;
                max_seq = max_seq.max(seq);
                seen.insert(seq);
                last = Some(Instant::now());
            }
            Ok(_) => received += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    let (mut gaps, mut longest, mut run) = (0u64, 0u64, 0u64);
    for seq in 0..expect {
        if seen.contains(&seq) {
            run = 0;
        } else {
            if run == 0 {
                gaps += 1;
            }
            run += 1;
            longest = longest.max(run);
        }
    }
    println!(
        "{{\"received\":{received},\"distinct\":{},\"duplicates\":{},\"max_seq\":{max_seq},\
         \"gaps\":{gaps},\"longest_gap\":{longest}}}",
        seen.len(),
        received.saturating_sub(seen.len() as u64)
    );
    Ok(())
}

/// Point count of a bare DataPacket response (wire.md §8), or -1.
fn data_packet_count(payload: &[u8]) -> i64 {
    match payload {
        [0x82, 0x02, _, _, _, _, flags, c0, c1, c2, c3, ..] if flags & 0x01 == 0 => {
            i64::from(i32::from_be_bytes([*c0, *c1, *c2, *c3]))
        }
        _ => -1,
    }
}

fn tap(args: &[String]) -> Result<()> {
    let port: u16 = arg(args, "--port", None)?;
    let idle = Duration::from_millis(arg(args, "--idle-ms", Some(2000))?);
    let max = Duration::from_secs(arg(args, "--max-secs", Some(60))?);
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))
        .context("opening a raw socket (needs root)")?;
    socket.set_recv_buffer_size(8 << 20)?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    println!("ready");
    std::io::stdout().flush()?;
    let start = Instant::now();
    let mut last: Option<Instant> = None;
    let mut counts: Vec<i64> = Vec::new();
    let mut buf = [0u8; 65536];
    while start.elapsed() < max && last.is_none_or(|t| t.elapsed() < idle) {
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).context("tap receive"),
        };
        let packet = &buf[..n];
        let ihl = usize::from(packet.first().copied().unwrap_or(0) & 0x0F) * 4;
        let Some(udp) = packet.get(ihl..) else {
            continue;
        };
        if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != port {
            continue;
        }
        counts.push(data_packet_count(&udp[8..]));
        last = Some(Instant::now());
    }
    let list: Vec<String> = counts.iter().map(i64::to_string).collect();
    println!(
        "{{\"datagrams\":{},\"counts\":[{}]}}",
        counts.len(),
        list.join(",")
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("recv") => recv(&args[1..]),
        Some("tap") => tap(&args[1..]),
        _ => bail!("usage: udp_probe send|recv|tap … (see the module documentation)"),
    }
}
