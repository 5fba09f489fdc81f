//! Criterion benches of the data plane's per-point and per-datagram machinery, in elements/s
//! (`Throughput::Elements`):
//! - `ring/publish_receive`: the source → worker hand-off of batches of 100 points (points/s),
//!   publish and receive on one thread, so the figure is the hand-off's own cost;
//! - `route/lookup`: routing-table lookups of 10 000 signals spread over 8 subscriptions
//!   (lookups/s);
//! - `udp/<backend>/gso-<on|off>`: batches of 64 datagrams of 1400 bytes to one loopback
//!   receiver drained by a second thread (datagrams/s). Loopback delivers in the sender's system
//!   call, so this is sender CPU plus the kernel's receive path, the machine's UDP ceiling.
//!   Quote the backends and GSO on/off as ratios within one run (design.md, "Measuring
//!   performance").

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use sttp_dataplane::io::{self, BackendChoice, BackendOptions, OutDatagrams};
use sttp_dataplane::ring::channels_for_tests;
use sttp_dataplane::route::RoutingTable;
use sttp_dataplane::SourcePoint;

const BATCH_POINTS: usize = 100;
const SIGNALS: u32 = 10_000;
const SUBSCRIPTIONS: u32 = 8;
const DATAGRAM: usize = 1400;
const DATAGRAMS_PER_SEND: usize = 64;

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(BATCH_POINTS as u64));
    let points: Vec<SourcePoint> = (0..BATCH_POINTS as u32)
        .map(|i| SourcePoint {
            signal: i,
            timestamp: 638_000_000_000_000_000 + i64::from(i),
            value: 60.0,
            flags: 0,
        })
        .collect();
    for workers in [1usize, 2] {
        let (source, receivers) = channels_for_tests(workers, 1024);
        group.bench_with_input(
            BenchmarkId::new("publish_receive", format!("{workers}-workers")),
            &workers,
            |b, _| {
                b.iter(|| {
                    source.publish(black_box(&points));
                    for rx in &receivers {
                        black_box(rx.try_recv().ok());
                    }
                })
            },
        );
    }
    group.finish();
}

fn route(c: &mut Criterion) {
    // Subscription s takes every signal whose index is ≡ s or ≡ 0 (mod 8): half the signals
    // have one route, some have none... a mix of fan-outs 0, 1 and 8 like real subscriptions.
    let subs: Vec<Vec<(u32, i32)>> = (0..SUBSCRIPTIONS)
        .map(|s| {
            (0..SIGNALS)
                .filter(|sig| sig % SUBSCRIPTIONS == s || sig % 16 == 0)
                .enumerate()
                .map(|(rid, sig)| (sig, rid as i32))
                .collect()
        })
        .collect();
    let table = RoutingTable::build(
        subs.iter()
            .enumerate()
            .map(|(slot, routes)| (slot as u32, routes.as_slice())),
    );
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(u64::from(SIGNALS)));
    group.bench_function("lookup", |b| {
        b.iter(|| {
            let mut fan_out = 0usize;
            for signal in 0..SIGNALS {
                fan_out += table.routes(black_box(signal)).len();
            }
            fan_out
        })
    });
    group.finish();
}

/// A loopback receiver drained by its own thread until dropped.
struct Drain {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (stop2, received2) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) {
                if socket.recv(&mut buf).is_ok() {
                    received2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            received,
            thread: Some(thread),
        })
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp");
    group.throughput(Throughput::Elements(DATAGRAMS_PER_SEND as u64));
    let payload = vec![0x5au8; DATAGRAM];
    for choice in [BackendChoice::Sendmmsg, BackendChoice::IoUring] {
        for gso in [true, false] {
            let options = BackendOptions {
                choice,
                gso,
                ..BackendOptions::default()
            };
            let mut backend = match io::open(&options) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("skipping udp/{choice}: {e}");
                    continue;
                }
            };
            let drain = match Drain::start() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("skipping udp/{choice}: no loopback receiver: {e}");
                    continue;
                }
            };
            let mut out = OutDatagrams::new();
            let mut sent = 0u64;
            let mut dropped = 0u64;
            let gso_name = if backend.gso() { "gso-on" } else { "gso-off" };
            group.bench_function(BenchmarkId::new(choice.to_string(), gso_name), |b| {
                b.iter(|| {
                    for _ in 0..DATAGRAMS_PER_SEND {
                        out.push(drain.addr, &payload);
                    }
                    let report = backend.send(&mut out);
                    sent += report.datagrams;
                    dropped += report.would_block + report.errors;
                })
            });
            std::thread::sleep(Duration::from_millis(100));
            eprintln!(
                "udp/{choice}/{gso_name}: sender accepted {sent}, dropped at the sender {dropped}, receiver got {}",
                drain.received.load(Ordering::Relaxed)
            );
        }
    }
    group.finish();
}

criterion_group!(benches, ring, route, udp);
criterion_main!(benches);
