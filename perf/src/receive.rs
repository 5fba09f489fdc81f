//! `sttp-perf receive`: K [`Subscriber`]s on one tokio runtime, every point checked by a
//! [`Validator`]; throughput and latency count only inside the measurement window
//! `[warmup, warmup + duration]` after start, so connection set-up and metadata stay out of it.

use crate::cpu::CpuSample;
use crate::publish::now_ticks;
use crate::report::ReceiverReport;
use crate::snmp;
use crate::validate::Validator;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sttp_control::client::{
    ClientEvent, ClientStats, ReconnectPolicy, Subscriber, SubscriberConfig, UdpChannel,
    UdpCipherChoice,
};
use tokio::sync::watch;

/// Window phases shared with the subscriber tasks.
const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

/// Receiver process settings.
#[derive(Debug, Clone)]
pub struct ReceiveOpts {
    /// `host:port` of the publisher's command channel.
    pub publisher: String,
    pub subscribers: u32,
    /// Signals the publisher serves (the subscription takes all of them).
    pub signals: u32,
    /// TSSC (else compact) on TCP.
    pub tssc: bool,
    pub warmup: Duration,
    pub duration: Duration,
    /// The publisher's PID, to measure its CPU over the same window.
    pub publisher_pid: Option<u32>,
    /// UDP data channel: first local port (subscriber k binds `port + k`; 0 = each binds a
    /// free port of its own and names it in its subscribe request) and protection.
    pub udp: Option<(u16, UdpCipherChoice)>,
}

/// Runs the subscribers through the window and reports.
pub fn run(opts: &ReceiveOpts) -> anyhow::Result<ReceiverReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(opts))
}

async fn run_async(opts: &ReceiveOpts) -> anyhow::Result<ReceiverReport> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let (stop_tx, stop_rx) = watch::channel(false);
    let snmp_before = snmp::udp_rcvbuf_errors();
    let mut tasks = Vec::new();
    for k in 0..opts.subscribers {
        let mut config = SubscriberConfig::new(opts.publisher.clone());
        if let Some((base, cipher)) = opts.udp {
            let port = if base == 0 {
                0
            } else {
                u16::try_from(u32::from(base) + k)
                    .map_err(|_| anyhow::anyhow!("UDP port range past 65535"))?
            };
            config.udp = Some(UdpChannel { port, cipher });
        }
        config.session.tssc = opts.tssc;
        config.session.settings.filter_expression = "FILTER ActiveMeasurements WHERE True".into();
        config.reconnect = ReconnectPolicy {
            enabled: false,
            ..ReconnectPolicy::default()
        };
        config.data_loss_timeout = None;
        config.event_queue = 4096;
        let validator = Validator::new(opts.signals)?;
        tasks.push(tokio::spawn(subscriber_task(
            config,
            validator,
            phase.clone(),
            stop_rx.clone(),
        )));
    }
    tokio::time::sleep(opts.warmup).await;
    let pub_start = opts.publisher_pid.and_then(|p| CpuSample::take(Some(p)));
    let own_start = CpuSample::take(None);
    phase.store(MEASURING, Ordering::SeqCst);
    let window_start = std::time::Instant::now();
    tokio::time::sleep(opts.duration).await;
    phase.store(DONE, Ordering::SeqCst);
    let window_secs = window_start.elapsed().as_secs_f64();
    let pub_end = opts.publisher_pid.and_then(|p| CpuSample::take(Some(p)));
    let own_end = CpuSample::take(None);
    let _ = stop_tx.send(true);

    let mut total = Validator::new(opts.signals)?;
    let mut report = ReceiverReport {
        transport: if opts.udp.is_some() { "udp" } else { "tcp" }.into(),
        subscribers: opts.subscribers,
        window_secs,
        ..ReceiverReport::default()
    };
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(outcome)) => {
                if outcome.validator.points_total > 0 {
                    report.subscribers_with_data += 1;
                }
                report.disconnects += outcome.disconnects;
                report.datagrams += outcome.window_datagrams;
                report.bytes += outcome.window_bytes;
                report.udp_auth_failures += outcome.last.auth_failures;
                report.udp_replays += outcome.last.replays;
                report.udp_decode_errors += outcome.last.decode_errors;
                total.merge(&outcome.validator);
            }
            Ok(Err(e)) => anyhow::bail!("a subscriber task failed: {e}"),
            Err(_) => anyhow::bail!("a subscriber did not stop within 10 s"),
        }
    }
    report.points = total.window_points;
    report.points_total = total.points_total;
    report.bad_values = total.bad_values;
    report.out_of_order = total.out_of_order;
    report.unknown_signals = total.unknown_signals;
    report.latency = total.latency();
    report.publisher_cpu_percent = pub_start.zip(pub_end).map(|(a, b)| a.percent_until(&b));
    report.receiver_cpu_percent = own_start.zip(own_end).map(|(a, b)| a.percent_until(&b));
    report.host_rcvbuf_errors = snmp_before
        .zip(snmp::udp_rcvbuf_errors())
        .map(|(a, b)| b.saturating_sub(a));
    Ok(report)
}

struct Outcome {
    validator: Validator,
    disconnects: u64,
    /// UDP datagrams and bytes received inside the window.
    window_datagrams: u64,
    window_bytes: u64,
    /// Client counters at the end.
    last: ClientStats,
}

async fn subscriber_task(
    config: SubscriberConfig,
    mut validator: Validator,
    phase: Arc<AtomicU8>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut sub = Subscriber::start(config);
    let mut disconnects = 0;
    // Client counters when this task first saw the window open (the first packet after it).
    let mut at_window_start: Option<ClientStats> = None;
    loop {
        tokio::select! {
            ev = sub.next_event() => match ev {
                Some(ClientEvent::Measurements(batch)) => {
                    let p = phase.load(Ordering::Relaxed);
                    if p == MEASURING && at_window_start.is_none() {
                        at_window_start = Some(sub.stats());
                    }
                    if p != DONE {
                        validator.check(&batch, now_ticks(), p == MEASURING);
                    }
                }
                Some(ClientEvent::Disconnected { reason }) => {
                    eprintln!("sttp-perf receive: subscriber disconnected: {reason}");
                    disconnects += 1;
                }
                Some(ClientEvent::SubscriptionUpdated { signals, .. }) => {
                    eprintln!("sttp-perf receive: subscribed to {signals} signals");
                }
                Some(ClientEvent::Stopped { reason }) => {
                    eprintln!("sttp-perf receive: subscriber stopped: {reason}");
                    break;
                }
                None => break,
                Some(_) => {}
            },
            _ = stop.changed() => break,
        }
    }
    let last = sub.stats();
    sub.stop().await;
    let first = at_window_start.unwrap_or(last);
    Outcome {
        validator,
        disconnects,
        window_datagrams: last
            .datagrams_received
            .saturating_sub(first.datagrams_received),
        window_bytes: last.datagram_bytes.saturating_sub(first.datagram_bytes),
        last,
    }
}
