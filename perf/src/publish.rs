//! `sttp-perf publish`: an in-process [`Publisher`] with the synthetic catalog and a source
//! thread that publishes one batch per frame of all S signals, either as fast as the engine takes
//! them (the engine's bounded queues push back) or paced to a target rate.
//!
//! Every frame's timestamp is the wall clock at publish (strictly increasing), so receivers on the
//! same host measure source-to-receipt latency from the points themselves.

use crate::catalog;
use crate::cpu::CpuSample;
use crate::oracle;
use crate::report::PublisherReport;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_control::server::{Limits, Publisher, PublisherConfig};
use sttp_dataplane::stats::StatsSnapshot;
use sttp_dataplane::{EngineConfig, SourceHandle, SourcePoint};

/// Publisher process settings.
#[derive(Debug, Clone)]
pub struct PublishOpts {
    pub listen: SocketAddr,
    pub signals: u32,
    /// Points per second; None = as fast as the engine takes them.
    pub rate: Option<f64>,
    pub workers: usize,
    /// Frames each subscriber's queue holds.
    pub subscriber_queue_frames: usize,
    /// Longest run.
    pub max_duration: Duration,
    /// Also stop when standard input closes (how the harness stops it).
    pub stop_on_stdin_eof: bool,
    /// Link MTU for UDP datagrams (None = engine default).
    pub mtu: Option<usize>,
    /// Longest a point waits for its packet to fill (None = engine default).
    pub flush_deadline: Option<Duration>,
}

/// How often the publisher samples its per-subscription counters: subscriptions vanish when
/// their subscribers disconnect, so totals come from the last sample of each.
const STATS_PERIOD: Duration = Duration::from_millis(200);

/// Now in STTP ticks (wire.md §6).
pub fn now_ticks() -> i64 {
    sttp_control::clock::now_ticks()
}

/// Runs the publisher until `max_duration` passes (or stdin closes, if asked); `ready` gets the bound address
/// once subscribers may connect.
pub fn run(opts: &PublishOpts, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<PublisherReport> {
    let cpu_start = CpuSample::take(None);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut engine = EngineConfig {
        workers: opts.workers,
        ..EngineConfig::default()
    };
    if let Some(mtu) = opts.mtu {
        engine.mtu = mtu;
    }
    if let Some(d) = opts.flush_deadline {
        engine.flush_deadline = d;
    }
    let config = PublisherConfig {
        listen: opts.listen,
        subscriber_queue_frames: opts.subscriber_queue_frames,
        engine,
        // Every perf subscriber connects from 127.0.0.1: allow the largest fan-out scenario.
        limits: Limits {
            max_per_source: 1024,
            ..Limits::default()
        },
        // No rotation inside a measurement; rotation has its own tests.
        key_rotation: None,
        ..PublisherConfig::default()
    };
    let catalog = catalog::synthetic(opts.signals);
    let publisher = runtime.block_on(Publisher::start(config, catalog))?;
    let indices: Vec<(u32, u32)> = (0..opts.signals)
        .filter_map(|i| {
            publisher
                .catalog()
                .signal_index(&oracle::signal_guid(i))
                .map(|g| (i, g))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let source = publisher.source();
    let started = Instant::now();
    let thread = {
        let stop = stop.clone();
        let source = source.clone();
        let rate = opts.rate;
        std::thread::Builder::new()
            .name("perf-source".into())
            .spawn(move || generate(&indices, rate, &source, &stop))?
    };
    ready(publisher.local_addr());
    let stdin_eof = opts.stop_on_stdin_eof.then(watch_stdin);
    let deadline = Instant::now() + opts.max_duration;
    let mut last: HashMap<std::net::SocketAddr, StatsSnapshot> = HashMap::new();
    while Instant::now() < deadline {
        let wait = STATS_PERIOD.min(deadline.saturating_duration_since(Instant::now()));
        let stop_now = match &stdin_eof {
            Some(rx) => rx.recv_timeout(wait).is_ok(),
            None => {
                std::thread::sleep(wait);
                false
            }
        };
        last.extend(publisher.subscription_stats());
        if stop_now {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let _ = thread.join();
    let seconds = started.elapsed().as_secs_f64();
    let mut report = PublisherReport {
        signals: opts.signals,
        points_published: source.stats().points.load(Ordering::Relaxed),
        source_overruns: source.stats().overruns.load(Ordering::Relaxed),
        seconds,
        ..PublisherReport::default()
    };
    last.extend(publisher.subscription_stats());
    for s in last.values() {
        report.subscriptions += 1;
        report.datagrams_sent += s.datagrams;
        report.points_sent += s.points;
        report.packets_sent += s.packets;
        report.bytes_sent += s.bytes;
        report.dropped_queue_full += s.dropped_queue_full;
        report.stream_resets += s.stream_resets;
    }
    for w in publisher.worker_stats() {
        report.send_would_block += w.send_would_block;
        report.send_errors += w.send_errors;
        if report.backend.is_none() {
            report.backend = w.backend;
        }
    }
    if let (Some(a), Some(b)) = (cpu_start, CpuSample::take(None)) {
        report.cpu_percent_total = a.percent_until(&b);
    }
    runtime.block_on(publisher.shutdown());
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(report)
}

/// A channel that fires when standard input reaches end of file (the harness closes it).
fn watch_stdin() -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let _ = std::thread::Builder::new()
        .name("perf-stdin".into())
        .spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = tx.send(());
        });
    rx
}

/// The source loop: one batch per frame, timestamp = wall clock (strictly increasing).
fn generate(indices: &[(u32, u32)], rate: Option<f64>, source: &SourceHandle, stop: &AtomicBool) {
    let mut batch: Vec<SourcePoint> = indices
        .iter()
        .map(|&(_, g)| SourcePoint {
            signal: g,
            timestamp: 0,
            value: 0.0,
            flags: 0,
        })
        .collect();
    // Frame period when paced.
    let period = rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(indices.len().max(1) as f64 / r));
    let start = Instant::now();
    let mut frame: u32 = 0;
    let mut last_t = i64::MIN;
    while !stop.load(Ordering::Relaxed) {
        if let Some(p) = period {
            let due = start + p * frame;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let t = now_ticks().max(last_t.saturating_add(1));
        last_t = t;
        for (p, &(i, _)) in batch.iter_mut().zip(indices) {
            p.timestamp = t;
            p.value = oracle::value(i, t);
        }
        source.publish(&batch);
        frame = frame.wrapping_add(1);
    }
}
