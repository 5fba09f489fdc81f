//! The engine: worker threads, each owning a share of the subscriptions, reading every source
//! batch from its queue, routing and encoding, and flushing to the subscribers' sinks.
//!
//! Bounded work per turn: a worker drains at most [`MAX_BATCHES_PER_TURN`] batches before it
//! flushes and looks at control messages again, so one busy source cannot starve control.

use crate::encoder::{EncoderSettings, SubscriptionEncoder};
use crate::point::SourcePoint;
use crate::ring::{self, Batch, SourceHandle};
use crate::route::RoutingTable;
use crate::sink::{PacketSink, SinkStatus};
use crate::stats::SubscriptionStats;
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_depth: 4096,
        }
    }
}

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

/// The running data plane.
#[derive(Debug)]
pub struct Engine {
    controls: Vec<Sender<Control>>,
    source: SourceHandle,
    threads: Vec<JoinHandle<()>>,
    next_id: AtomicU64,
}

impl Engine {
    /// Starts the workers.
    pub fn start(config: EngineConfig) -> std::io::Result<Self> {
        let workers = config.workers.max(1);
        let (source, data_rxs) = ring::channels(workers, config.queue_depth.max(1));
        let mut controls = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for (index, data_rx) in data_rxs.into_iter().enumerate() {
            let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
            controls.push(ctl_tx);
            let thread = std::thread::Builder::new()
                .name(format!("sttp-worker-{index}"))
                .spawn(move || Worker::new(index).run(&data_rx, &ctl_rx))?;
            threads.push(thread);
        }
        tracing::info!(workers, "data plane started (thread backend)");
        Ok(Self {
            controls,
            source,
            threads,
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
    /// (re)starts the encoder with `settings` (wire.md §5: reset TSSC on a new cache).
    pub fn activate(&self, routes: Vec<(u32, i32)>, cache_index: u8, settings: EncoderSettings) {
        self.send(Control::Activate {
            id: self.id,
            routes,
            cache_index,
            settings,
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
    closed: bool,
}

struct Worker {
    index: usize,
    slots: Vec<Slot>,
    by_id: HashMap<u64, usize>,
    table: RoutingTable,
}

impl Worker {
    fn new(index: usize) -> Self {
        Self {
            index,
            slots: Vec::new(),
            by_id: HashMap::new(),
            table: RoutingTable::default(),
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
                        for _ in 1..MAX_BATCHES_PER_TURN {
                            match data.try_recv() {
                                Ok(batch) => self.route(&batch, now),
                                Err(_) => break,
                            }
                        }
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
                    closed: false,
                });
            }
            Control::Activate {
                id,
                routes,
                cache_index,
                settings,
            } => {
                if let Some(slot) = self.by_id.get(&id).and_then(|&i| self.slots.get_mut(i)) {
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
            if enc.flush(slot.sink.as_mut(), now) == SinkStatus::Closed {
                slot.closed = true;
                closed = true;
            }
        }
        if closed {
            self.rebuild();
        }
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
