//! The engine: worker threads, each (optionally) pinned to a core and owning a share of the
//! subscriptions, reading every source batch from its queue, routing and encoding, and
//! flushing to the subscribers: framed onto their TCP command channels, or as UDP datagrams
//! collected over the whole turn and handed to the worker's own batched sender
//! ([`crate::io`]: io_uring, or sendmmsg where io_uring is unavailable).
//!
//! Bounded work per turn: a worker drains at most [`MAX_BATCHES_PER_TURN`] batches before it
//! flushes and looks at control messages again, so one busy source cannot starve control.

use crate::delivery::{self, Delivery, Sealer, UdpSplit};
use crate::encoder::{EncoderSettings, Format, SubscriptionEncoder};
use crate::io::{self, BackendOptions, OutDatagrams, UdpBackend};
use crate::point::SourcePoint;
use crate::ring::{self, Batch, SourceHandle};
use crate::route::RoutingTable;
use crate::sink::{PacketSink, SinkStatus};
use crate::stats::{SubscriptionStats, WorkerStats, WorkerStatsSnapshot};
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sttp_wire::Measurement;

/// Batches a worker processes before it flushes and checks control messages.
const MAX_BATCHES_PER_TURN: usize = 64;
/// Longest a worker sleeps with nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Engine sizing.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads (subscriptions are spread round-robin).
    pub workers: usize,
    /// Batches each worker's source queue holds.
    pub queue_depth: usize,
    /// The UDP sender each worker opens when it gets its first UDP subscription.
    pub backend: BackendOptions,
    /// Pin worker `i` to core `i mod cores`.
    pub pin_workers: bool,
    /// Link MTU: UDP datagrams are sized to fit it without IP fragmentation (default 1500,
    /// Ethernet). Larger values are allowed for links that tolerate some fragmentation.
    pub mtu: usize,
    /// Longest a buffered point waits for more points to share its packet.
    pub flush_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_depth: 4096,
            backend: BackendOptions::default(),
            pin_workers: false,
            mtu: 1500,
            flush_deadline: Duration::from_millis(1),
        }
    }
}

/// Smallest MTU accepted (IPv6's minimum link MTU).
pub const MIN_MTU: usize = 1280;
/// Largest MTU accepted: one datagram of at most 64 KiB.
pub const MAX_MTU: usize = 65_535;

/// What the control plane asks of a worker.
enum Control {
    Add {
        id: u64,
        sink: Box<dyn PacketSink>,
        stats: Arc<SubscriptionStats>,
    },
    Activate {
        id: u64,
        routes: Vec<(u32, i32)>,
        cache_index: u8,
        settings: EncoderSettings,
        delivery: Delivery,
    },
    SetSealer {
        id: u64,
        sealer: Option<Box<dyn Sealer>>,
    },
    Deactivate {
        id: u64,
    },
    Remove {
        id: u64,
    },
    Shutdown,
}

/// A new subscription: where its bytes go.
pub struct SubscriptionSpec {
    /// The subscriber's outgoing queue.
    pub sink: Box<dyn PacketSink>,
}

/// What the control plane can read about a worker.
#[derive(Debug, Default)]
struct WorkerInfo {
    stats: Arc<WorkerStats>,
    core: Arc<OnceLock<Option<usize>>>,
    backend: Arc<OnceLock<String>>,
}

/// The running data plane.
#[derive(Debug)]
pub struct Engine {
    controls: Vec<Sender<Control>>,
    source: SourceHandle,
    threads: Vec<JoinHandle<()>>,
    workers: Vec<WorkerInfo>,
    next_id: AtomicU64,
}

impl Engine {
    /// Starts the workers.
    pub fn start(config: EngineConfig) -> std::io::Result<Self> {
        let workers = config.workers.max(1);
        let (source, data_rxs) = ring::channels(workers, config.queue_depth.max(1));
        let mut controls = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let mut infos = Vec::with_capacity(workers);
        for (index, data_rx) in data_rxs.into_iter().enumerate() {
            let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
            controls.push(ctl_tx);
            let info = WorkerInfo::default();
            let worker = Worker::new(index, &config, &info);
            let pin = config.pin_workers;
            let core = info.core.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sttp-worker-{index}"))
                .spawn(move || {
                    let _ = core.set(if pin {
                        crate::pin::pin_current_thread(index)
                    } else {
                        None
                    });
                    worker.run(&data_rx, &ctl_rx)
                })?;
            threads.push(thread);
            infos.push(info);
        }
        tracing::info!(
            workers,
            pinned = config.pin_workers,
            mtu = config.mtu,
            flush_deadline_us = config.flush_deadline.as_micros() as u64,
            "data plane started"
        );
        Ok(Self {
            controls,
            source,
            threads,
            workers: infos,
            next_id: AtomicU64::new(0),
        })
    }

    /// The handle sources publish through.
    pub fn source(&self) -> SourceHandle {
        self.source.clone()
    }

    /// Registers a subscription on the next worker (round-robin). It receives nothing until
    /// [`SubscriptionHandle::activate`].
    pub fn add_subscription(&self, spec: SubscriptionSpec) -> SubscriptionHandle {
        let id = self.next_id.fetch_add(1, Relaxed);
        let worker = (id as usize) % self.controls.len().max(1);
        let stats = Arc::new(SubscriptionStats::default());
        let control = self.controls.get(worker).cloned();
        if let Some(ctl) = &control {
            let _ = ctl.send(Control::Add {
                id,
                sink: spec.sink,
                stats: stats.clone(),
            });
        }
        SubscriptionHandle { id, control, stats }
    }

    /// Counters of every worker.
    pub fn worker_stats(&self) -> Vec<WorkerStatsSnapshot> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.stats
                    .snapshot(i, w.core.get().copied().flatten(), w.backend.get().cloned())
            })
            .collect()
    }

    /// Stops the workers and waits for them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for ctl in &self.controls {
            let _ = ctl.send(Control::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The control plane's handle on one subscription. Dropping it removes the subscription.
#[derive(Debug)]
pub struct SubscriptionHandle {
    id: u64,
    control: Option<Sender<Control>>,
    stats: Arc<SubscriptionStats>,
}

impl SubscriptionHandle {
    /// Installs routes `(global signal, runtime id)` for a confirmed signal index cache slot and
    /// (re)starts the encoder with `settings` (wire.md §5: reset TSSC on a new cache), sending
    /// its packets by `delivery`. A UDP delivery always uses the compact format (wire.md §8).
    pub fn activate(
        &self,
        routes: Vec<(u32, i32)>,
        cache_index: u8,
        settings: EncoderSettings,
        delivery: Delivery,
    ) {
        self.send(Control::Activate {
            id: self.id,
            routes,
            cache_index,
            settings,
            delivery,
        });
    }

    /// Seals every following UDP datagram with `sealer` (None = plaintext). The switch happens
    /// between two datagrams; nothing already sealed is re-sealed.
    pub fn set_sealer(&self, sealer: Option<Box<dyn Sealer>>) {
        self.send(Control::SetSealer {
            id: self.id,
            sealer,
        });
    }

    /// Removes every route (Unsubscribe); the subscription stays registered.
    pub fn deactivate(&self) {
        self.send(Control::Deactivate { id: self.id });
    }

    /// Counters of this subscription.
    pub fn stats(&self) -> &Arc<SubscriptionStats> {
        &self.stats
    }

    fn send(&self, c: Control) {
        if let Some(ctl) = &self.control {
            let _ = ctl.send(c);
        }
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        self.send(Control::Remove { id: self.id });
    }
}

/// One subscription as a worker holds it.
struct Slot {
    id: u64,
    sink: Box<dyn PacketSink>,
    encoder: Option<SubscriptionEncoder>,
    routes: Vec<(u32, i32)>,
    stats: Arc<SubscriptionStats>,
    delivery: Delivery,
    sealer: Option<Box<dyn Sealer>>,
    closed: bool,
}

impl Slot {
    /// The packet payload limit for this slot's delivery and cipher.
    fn max_payload(&self, mtu: usize, tcp_default: usize) -> usize {
        match self.delivery {
            Delivery::Tcp => tcp_default,
            Delivery::Udp { dest } => delivery::udp_max_payload(
                mtu,
                dest,
                self.sealer.as_ref().map_or(0, |s| s.overhead()),
            ),
        }
    }
}

/// The worker's UDP sender, opened on first use.
enum Sender_ {
    NotOpened,
    Open(Box<dyn UdpBackend>),
    Failed,
}

struct Worker {
    index: usize,
    slots: Vec<Slot>,
    by_id: HashMap<u64, usize>,
    table: RoutingTable,
    mtu: usize,
    flush_deadline: Duration,
    backend_options: BackendOptions,
    sender: Sender_,
    out: OutDatagrams,
    stats: Arc<WorkerStats>,
    backend_name: Arc<OnceLock<String>>,
}

impl Worker {
    fn new(index: usize, config: &EngineConfig, info: &WorkerInfo) -> Self {
        Self {
            index,
            slots: Vec::new(),
            by_id: HashMap::new(),
            table: RoutingTable::default(),
            mtu: config.mtu.clamp(MIN_MTU, MAX_MTU),
            flush_deadline: config.flush_deadline,
            backend_options: config.backend.clone(),
            sender: Sender_::NotOpened,
            out: OutDatagrams::new(),
            stats: info.stats.clone(),
            backend_name: info.backend.clone(),
        }
    }

    fn run(mut self, data: &Receiver<Batch>, control: &Receiver<Control>) {
        loop {
            let wait = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()).min(IDLE_WAIT))
                .unwrap_or(IDLE_WAIT);
            crossbeam_channel::select! {
                recv(control) -> c => match c {
                    Ok(c) => if !self.apply(c) { return },
                    Err(_) => return,
                },
                recv(data) -> b => match b {
                    Ok(batch) => {
                        let now = Instant::now();
                        self.route(&batch, now);
                        let mut batches = 1;
                        for _ in 1..MAX_BATCHES_PER_TURN {
                            match data.try_recv() {
                                Ok(batch) => {
                                    batches += 1;
                                    self.route(&batch, now);
                                }
                                Err(_) => break,
                            }
                        }
                        self.stats.turns.fetch_add(1, Relaxed);
                        self.stats.batches.fetch_add(batches, Relaxed);
                    }
                    Err(_) => return,
                },
                default(wait) => {}
            }
            while let Ok(c) = control.try_recv() {
                if !self.apply(c) {
                    return;
                }
            }
            self.flush(Instant::now());
        }
    }

    /// Applies a control message; false on shutdown.
    fn apply(&mut self, c: Control) -> bool {
        match c {
            Control::Add { id, sink, stats } => {
                self.by_id.insert(id, self.slots.len());
                self.slots.push(Slot {
                    id,
                    sink,
                    encoder: None,
                    routes: Vec::new(),
                    stats,
                    delivery: Delivery::Tcp,
                    sealer: None,
                    closed: false,
                });
                self.stats
                    .subscriptions
                    .store(self.slots.len() as u64, Relaxed);
            }
            Control::Activate {
                id,
                routes,
                cache_index,
                mut settings,
                delivery,
            } => {
                if let Some(slot) = self.by_id.get(&id).and_then(|&i| self.slots.get_mut(i)) {
                    slot.delivery = delivery;
                    settings.flush_deadline = self.flush_deadline;
                    settings.datagrams = matches!(delivery, Delivery::Udp { .. });
                    if settings.datagrams {
                        // TSSC state cannot survive datagram loss (wire.md §8).
                        settings.format = Format::Compact;
                    }
                    settings.max_payload = slot.max_payload(self.mtu, settings.max_payload);
                    match slot.encoder.as_mut() {
                        Some(enc) => enc.activate(cache_index, settings),
                        None => {
                            slot.encoder = Some(SubscriptionEncoder::new(
                                settings,
                                cache_index,
                                slot.stats.clone(),
                            ))
                        }
                    }
                    slot.routes = routes;
                    self.rebuild();
                }
            }
            Control::SetSealer { id, sealer } => {
                if let Some(slot) = self.by_id.get(&id).and_then(|&i| self.slots.get_mut(i)) {
                    if let (Some(old), Some(new)) = (&slot.sealer, &sealer) {
                        SubscriptionStats::add(&slot.stats.key_rotations, 1);
                        tracing::debug!(worker = self.index, from = %old.describe(), to = %new.describe(), "data-channel key switched");
                    }
                    slot.sealer = sealer;
                    let tcp_default = EncoderSettings::default().max_payload;
                    let max = slot.max_payload(self.mtu, tcp_default);
                    if let Some(enc) = slot.encoder.as_mut() {
                        enc.set_max_payload(max);
                    }
                }
            }
            Control::Deactivate { id } => {
                if let Some(slot) = self.by_id.get(&id).and_then(|&i| self.slots.get_mut(i)) {
                    slot.routes.clear();
                    self.rebuild();
                }
            }
            Control::Remove { id } => {
                if let Some(i) = self.by_id.remove(&id) {
                    if i < self.slots.len() {
                        self.slots.swap_remove(i);
                    }
                    if let Some(moved) = self.slots.get(i) {
                        self.by_id.insert(moved.id, i);
                    }
                    self.stats
                        .subscriptions
                        .store(self.slots.len() as u64, Relaxed);
                    self.rebuild();
                }
            }
            Control::Shutdown => return false,
        }
        true
    }

    fn rebuild(&mut self) {
        self.table = RoutingTable::build(
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.closed)
                .map(|(i, s)| (i as u32, s.routes.as_slice())),
        );
        tracing::debug!(
            worker = self.index,
            subscriptions = self.slots.len(),
            "routes rebuilt"
        );
    }

    #[inline]
    fn route(&mut self, batch: &[SourcePoint], now: Instant) {
        self.stats.points_in.fetch_add(batch.len() as u64, Relaxed);
        for p in batch {
            for r in self.table.routes(p.signal) {
                if let Some(enc) = self
                    .slots
                    .get_mut(r.slot as usize)
                    .and_then(|s| s.encoder.as_mut())
                {
                    enc.push(
                        Measurement {
                            runtime_id: r.runtime_id,
                            timestamp: p.timestamp,
                            value: p.value,
                            flags: p.flags,
                        },
                        now,
                    );
                }
            }
        }
    }

    fn flush(&mut self, now: Instant) {
        let mut closed = false;
        for slot in &mut self.slots {
            let Some(enc) = slot.encoder.as_mut() else {
                continue;
            };
            if slot.closed || !enc.wants_flush(now) {
                continue;
            }
            let status = match slot.delivery {
                Delivery::Tcp => enc.flush(slot.sink.as_mut(), now),
                Delivery::Udp { dest } => {
                    let mut split = UdpSplit {
                        dest,
                        out: &mut self.out,
                        control: slot.sink.as_mut(),
                        sealer: slot.sealer.as_deref_mut(),
                        counts: Default::default(),
                    };
                    let status = enc.flush(&mut split, now);
                    SubscriptionStats::add(&slot.stats.datagrams, split.counts.datagrams);
                    SubscriptionStats::add(&slot.stats.seal_failures, split.counts.seal_failures);
                    status
                }
            };
            if status == SinkStatus::Closed {
                slot.closed = true;
                closed = true;
            }
        }
        if !self.out.is_empty() {
            self.send_datagrams();
        }
        if closed {
            self.rebuild();
        }
    }

    /// Hands this turn's datagrams to the sender in one batch.
    fn send_datagrams(&mut self) {
        if let Sender_::NotOpened = self.sender {
            self.sender = match io::open(&self.backend_options) {
                Ok(backend) => {
                    let name = format!(
                        "{}{}",
                        backend.kind(),
                        if backend.gso() { "+gso" } else { "" }
                    );
                    tracing::info!(worker = self.index, backend = %name, "UDP sender opened");
                    let _ = self.backend_name.set(name);
                    Sender_::Open(backend)
                }
                Err(e) => {
                    tracing::error!(worker = self.index, error = %e, "cannot open a UDP sender; UDP data channels on this worker get nothing");
                    Sender_::Failed
                }
            };
        }
        match &mut self.sender {
            Sender_::Open(backend) => {
                let report = backend.send(&mut self.out);
                let s = &self.stats;
                s.datagrams_sent.fetch_add(report.datagrams, Relaxed);
                s.bytes_sent.fetch_add(report.bytes, Relaxed);
                s.send_would_block.fetch_add(report.would_block, Relaxed);
                s.send_errors.fetch_add(report.errors, Relaxed);
                s.submissions.fetch_add(report.submissions, Relaxed);
            }
            Sender_::Failed | Sender_::NotOpened => {
                self.stats
                    .send_errors
                    .fetch_add(self.out.datagrams() as u64, Relaxed);
            }
        }
        self.out.clear();
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| {
                s.encoder
                    .as_ref()
                    .and_then(SubscriptionEncoder::next_deadline)
            })
            .min()
    }
}
