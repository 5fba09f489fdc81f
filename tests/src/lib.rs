//! Support for the cross-crate tests: a deterministic test publisher, the oracle of what it
//! published, and access to the Python reference peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fuzz_bodies;
pub mod netns;
pub mod udp_proxy;
pub mod window;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sttp_control::config::DemoConfig;
use sttp_control::demo::DemoFleet;
use sttp_control::server::{Publisher, PublisherConfig};
use sttp_dataplane::SourcePoint;
use sttp_proto::catalog::Catalog;
use uuid::Uuid;

/// Base timestamp of every test stream: 2026-11-21T00:00:00.1230000Z.
pub const T0: i64 = 639_308_160_001_230_000;
/// Ticks between frames (30 frames/s).
pub const FRAME_TICKS: i64 = 333_333;
/// Flags cycled through by the test stream: each survives the compact format's lossy mapping.
pub const FLAGS: [u32; 3] = [0, 0x0000_1000, 0x0040_0000];

/// The repository root.
pub fn repo_root() -> PathBuf {
    std::env::var_os("STTP_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// The Python interpreter with `sttpapi` 0.7.6. In CI (CI=true) its absence is a failure; on a
/// developer machine the interop tests say they were skipped.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("STTP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    if candidate.exists() {
        return Some(candidate);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the Python peer is required in CI but {} does not exist (run `cargo xtask test`)",
            candidate.display()
        );
    }
    eprintln!(
        "SKIPPED: no Python peer at {}; run `cargo xtask test` to install it",
        candidate.display()
    );
    None
}

/// The point one test signal carries at one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub signal: Uuid,
    pub ticks: i64,
    pub value: f32,
    pub flags: u32,
}

impl From<&sttp_proto::session::ReceivedMeasurement> for Expected {
    fn from(m: &sttp_proto::session::ReceivedMeasurement) -> Self {
        Self {
            signal: m.signal_id,
            ticks: m.timestamp,
            value: m.value,
            flags: m.flags,
        }
    }
}

/// Collects every measurement `sub` delivers for `limit`; a disconnect or a stop fails the test.
pub async fn collect_for(
    sub: &mut sttp_control::client::Subscriber,
    limit: Duration,
    out: &mut Vec<Expected>,
) {
    use sttp_control::client::ClientEvent;
    let run = async {
        loop {
            match sub.next_event().await {
                Some(ClientEvent::Measurements(b)) => out.extend(b.iter().map(Expected::from)),
                Some(ClientEvent::Disconnected { reason }) => {
                    panic!("subscriber disconnected: {reason}")
                }
                Some(_) => {}
                None => panic!("subscriber stopped"),
            }
        }
    };
    let _ = tokio::time::timeout(limit, run).await;
}

/// Value of signal `i` at frame `f`: exact in f32.
pub fn value_of(i: usize, f: u64) -> f32 {
    (i as f32) * 1000.0 + (f % 4096) as f32 * 0.25
}

/// A publisher on an ephemeral loopback port with `signals` test signals, and a stream that
/// publishes frames at `rate` until stopped, remembering what it sent.
pub struct TestPublisher {
    publisher: Option<Publisher>,
    pub signals: Vec<Uuid>,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestPublisher {
    /// Starts the publisher (not yet the stream).
    pub async fn start(signals: usize) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), signals).await
    }

    /// Starts the publisher on a given address.
    pub async fn start_on(addr: std::net::SocketAddr, signals: usize) -> Self {
        Self::start_with(
            PublisherConfig {
                listen: addr,
                ..PublisherConfig::default()
            },
            signals,
        )
        .await
    }

    /// Starts the publisher with a given configuration.
    pub async fn start_with(config: PublisherConfig, signals: usize) -> Self {
        let fleet = DemoFleet::new(&DemoConfig {
            signals,
            ..DemoConfig::default()
        });
        let catalog = Catalog::new(
            Uuid::from_u128(0x5177_0000_0000_0000_0000_0000_0000_0001),
            fleet.metadata().clone(),
        );
        let publisher = Publisher::start(config, catalog)
            .await
            .expect("publisher starts");
        let signals = fleet.signals().iter().map(|s| s.signal_id).collect();
        Self {
            publisher: Some(publisher),
            signals,
            stop: Arc::new(AtomicBool::new(false)),
            frames: Arc::new(AtomicU64::new(0)),
            thread: None,
        }
    }

    /// Publishes frame after frame, `period` apart, starting at frame `first`.
    pub fn stream(&mut self, period: Duration, first: u64) {
        let catalog = self.publisher().catalog();
        let indices: Vec<u32> = self
            .signals
            .iter()
            .map(|g| catalog.signal_index(g).unwrap())
            .collect();
        let source = self.publisher().source();
        let stop = self.stop.clone();
        let frames = self.frames.clone();
        frames.store(first, Ordering::SeqCst);
        self.thread = Some(std::thread::spawn(move || {
            let mut f = first;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<SourcePoint> = indices
                    .iter()
                    .enumerate()
                    .map(|(i, &signal)| SourcePoint {
                        signal,
                        timestamp: T0 + f as i64 * FRAME_TICKS,
                        value: value_of(i, f),
                        flags: FLAGS[(f as usize + i) % FLAGS.len()],
                    })
                    .collect();
                source.publish(&batch);
                f += 1;
                frames.store(f, Ordering::SeqCst);
                std::thread::sleep(period);
            }
        }));
    }

    /// Stops the stream; returns the number of the frame after the last published one.
    pub fn stop_stream(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.stop.store(false, Ordering::SeqCst);
        self.frames.load(Ordering::SeqCst)
    }

    /// Position of every test signal, by signal ID.
    pub fn positions(&self) -> HashMap<Uuid, usize> {
        self.signals
            .iter()
            .enumerate()
            .map(|(i, g)| (*g, i))
            .collect()
    }

    /// The running publisher.
    pub fn publisher(&self) -> &Publisher {
        self.publisher.as_ref().expect("publisher running")
    }

    /// Stops the stream and the publisher (its port is free again afterwards).
    pub async fn shutdown(mut self) {
        self.stop_stream();
        if let Some(p) = self.publisher.take() {
            p.shutdown().await;
        }
    }

    /// The number of the next frame the stream will publish.
    pub fn current_frame(&self) -> u64 {
        self.frames.load(Ordering::SeqCst)
    }

    /// What signal `signal` carried at frame `f`.
    pub fn expected(&self, signal_pos: usize, f: u64) -> Expected {
        Expected {
            signal: self.signals[signal_pos],
            ticks: T0 + f as i64 * FRAME_TICKS,
            value: value_of(signal_pos, f),
            flags: FLAGS[(f as usize + signal_pos) % FLAGS.len()],
        }
    }
}

impl Drop for TestPublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks that every received point is exactly what the stream published for its signal and
/// frame (signal known, timestamp on the frame grid, value bits and flags identical).
pub fn check_points(tp: &TestPublisher, received: &[Expected]) -> Result<(), String> {
    let positions = tp.positions();
    for r in received {
        let pos = *positions
            .get(&r.signal)
            .ok_or_else(|| format!("unknown signal {} received", r.signal))?;
        let rel = r.ticks - T0;
        if rel < 0 || rel % FRAME_TICKS != 0 {
            return Err(format!(
                "timestamp {} is not on the test frame grid",
                r.ticks
            ));
        }
        let e = tp.expected(pos, (rel / FRAME_TICKS) as u64);
        if e.value.to_bits() != r.value.to_bits() || e.flags != r.flags {
            return Err(format!("point mismatch: got {r:?}, expected {e:?}"));
        }
    }
    Ok(())
}

/// Checks received points against the test stream: every point of every frame from the first
/// received frame up to `end_frame` (exclusive) arrived exactly once with identical signal,
/// timestamp, value bits and flags, and nothing else arrived. Returns the number of frames checked.
pub fn check_window(
    tp: &TestPublisher,
    received: &[Expected],
    end_frame: u64,
    allowed_signals: Option<&[usize]>,
) -> Result<u64, String> {
    check_points(tp, received)?;
    let positions = tp.positions();
    let wanted: Vec<usize> = match allowed_signals {
        Some(a) => a.to_vec(),
        None => (0..tp.signals.len()).collect(),
    };
    let mut seen: HashMap<(usize, u64), u32> = HashMap::new();
    let mut first_frame = u64::MAX;
    for r in received {
        let pos = positions[&r.signal];
        if !wanted.contains(&pos) {
            return Err(format!(
                "signal {} (position {pos}) was not subscribed but arrived",
                r.signal
            ));
        }
        let f = ((r.ticks - T0) / FRAME_TICKS) as u64;
        *seen.entry((pos, f)).or_default() += 1;
        first_frame = first_frame.min(f);
    }
    if received.is_empty() {
        return Err("nothing received".into());
    }
    if let Some(((pos, f), n)) = seen.iter().find(|(_, n)| **n > 1) {
        return Err(format!("signal position {pos} frame {f} arrived {n} times"));
    }
    let mut missing = Vec::new();
    for f in first_frame..end_frame {
        for &pos in &wanted {
            if !seen.contains_key(&(pos, f)) {
                missing.push((pos, f));
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "{} points missing in frames {first_frame}..{end_frame}, first: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    Ok(end_frame.saturating_sub(first_frame))
}
