//! The JSON each `sttp-perf` process writes on exit; `cargo xtask perf` reads them back.

use serde::{Deserialize, Serialize};

/// Written by `sttp-perf publish`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublisherReport {
    /// Signals in the catalog.
    pub signals: u32,
    /// Points handed to the engine.
    pub points_published: u64,
    /// Batches a worker could not take in time.
    pub source_overruns: u64,
    /// Seconds the source ran.
    pub seconds: f64,
    /// Sums over the subscriptions still live at exit.
    pub subscriptions: u64,
    /// Points accepted by the subscriptions' sinks.
    pub points_sent: u64,
    /// DataPacket frames or datagrams accepted by the sinks.
    pub packets_sent: u64,
    /// Bytes accepted by the sinks.
    pub bytes_sent: u64,
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
    /// UDP datagrams dropped on a full send buffer / by other send errors (all workers).
    pub send_would_block: u64,
    pub send_errors: u64,
    /// UDP backend the workers opened, if any.
    pub backend: Option<String>,
    /// Points dropped because a subscriber's queue was full.
    pub dropped_queue_full: u64,
    /// TSSC stream restarts forced by drops.
    pub stream_resets: u64,
    /// The whole process's CPU over its run, percent of one core.
    pub cpu_percent_total: f64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Written by `sttp-perf receive` (validated subscribers) and `sttp-perf receive --raw`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReceiverReport {
    /// `tcp` or `udp`.
    pub transport: String,
    /// Subscribers (or raw sockets).
    pub subscribers: u32,
    /// Length of the measurement window, seconds.
    pub window_secs: f64,
    /// Points received inside the window, all subscribers.
    pub points: u64,
    /// Datagrams (UDP) received inside the window; 0 for TCP.
    pub datagrams: u64,
    /// Payload bytes received inside the window (raw receivers and UDP subscribers).
    pub bytes: u64,
    /// Points whose value differs from the oracle (whole run).
    pub bad_values: u64,
    /// Points not newer than the previous point of their signal (whole run).
    pub out_of_order: u64,
    /// Points of signals outside the subscribed set (whole run).
    pub unknown_signals: u64,
    /// Points received over the whole run.
    pub points_total: u64,
    /// Subscribers that received at least one point.
    pub subscribers_with_data: u32,
    /// Disconnects seen.
    pub disconnects: u64,
    /// Source timestamp to receipt.
    pub latency: Latency,
    /// The publisher's CPU over the window (when its PID was given), percent of one core.
    pub publisher_cpu_percent: Option<f64>,
    /// This process's CPU over the window, percent of one core.
    pub receiver_cpu_percent: Option<f64>,
    /// Host UDP receive-buffer drops (`/proc/net/snmp` RcvbufErrors) during the run.
    pub host_rcvbuf_errors: Option<u64>,
    /// Client-side UDP counters where the subscriber exposes them.
    pub udp_auth_failures: u64,
    pub udp_replays: u64,
    pub udp_decode_errors: u64,
}

/// Written by `sttp-perf ceiling`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CeilingReport {
    /// `tcp` or `udp`.
    pub transport: String,
    /// Send method used (the UDP backend's kind, or `tcp-write`).
    pub backend: String,
    /// UDP GSO in use.
    pub gso: bool,
    /// Datagram (or write) size in bytes.
    pub size: usize,
    /// Datagrams (or writes) handed to the kernel.
    pub sent: u64,
    /// Bytes handed to the kernel.
    pub bytes: u64,
    /// Seconds spent sending.
    pub seconds: f64,
    /// Sender CPU percent of one core.
    pub cpu_percent: f64,
}
