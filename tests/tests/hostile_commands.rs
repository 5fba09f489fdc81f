//! CPU-heavy commands from a few hostile connections (issue "Hardening round 2", test-plan T14):
//! while four source addresses repeat the most expensive commands a peer can send — a Subscribe
//! whose connection string has 100 000 keys, a filter nesting Replace inside Replace, 14 000
//! statements each with ORDER BY, metadata refreshes in a loop — a good subscriber that was
//! already streaming sees every point of every signal, and a fresh subscriber connects and gets
//! data within 2 s. Each attack's CPU time per command is printed.
//!
//! The publisher runs commands on its command pool (docs/hardening.md, "CPU isolation"); the
//! negative control runs the same attack with the pool off (commands on the connection tasks)
//! and reports the figures next to the protected run.
//!
//! At the end, the connection counters are compared with the log lines: every `connection
//! closed` line is one close counted under its reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sttp_control::client::{ClientEvent, Subscriber, SubscriberConfig};
use sttp_control::server::{CommandSettings, PublisherConfig};
use sttp_proto::command::Command;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::framing::FrameDecoder;
use sttp_proto::opmodes::OperationalModes;
use sttp_proto::response::{code as rsp, decode_responses};
use sttp_tests::{check_window, Expected, TestPublisher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SIGNALS: usize = 150;
/// The tests measure CPU per thread and read the global log: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const PERIOD: Duration = Duration::from_millis(33);
/// Hostile source addresses per attack.
const ATTACKERS: u8 = 4;
/// How long each attack runs.
const ATTACK_TIME: Duration = Duration::from_secs(6);
/// A fresh subscriber must get data within this time while an attack runs.
const FRESH_LIMIT: Duration = Duration::from_secs(2);

fn frame(c: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(StringEncoding::Utf8, &mut out);
    out
}

fn subscribe_with(connection_string: String) -> Vec<u8> {
    frame(&Command::Subscribe {
        flags: sttp_proto::command::SUBSCRIBE_FLAG_COMPACT,
        connection_string,
    })
}

fn filter(expr: &str) -> String {
    format!("includeTime=true;filterExpression={{{expr}}}")
}

/// The attacks: a name and the command each attacker repeats.
fn attacks() -> Vec<(&'static str, Vec<u8>)> {
    let mut keys = String::from("filterExpression={FILTER ActiveMeasurements WHERE True}");
    for i in 0..100_000 {
        keys.push_str(&format!(";k{i}=v"));
    }
    let mut nested = String::from("PointTag");
    for _ in 0..7 {
        nested = format!("Replace({nested},'1','1111111111')");
    }
    let nested = format!("FILTER ActiveMeasurements WHERE Len({nested}) > 0");
    let order_by = "FILTER ActiveMeasurements WHERE True ORDER BY PointTag;".repeat(14_000);
    vec![
        ("connection string with 100,000 keys", subscribe_with(keys)),
        ("nested Replace filter", subscribe_with(filter(&nested))),
        (
            "14,000 ORDER BY statements",
            subscribe_with(filter(&order_by)),
        ),
        (
            "metadata refresh loop",
            frame(&Command::MetadataRefresh { filters: None }),
        ),
    ]
}

async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// Reads until a Succeeded or Failed response to `command` arrives; false when the
/// connection closed or `limit` passed.
async fn await_answer(s: &mut TcpStream, command: u8, limit: Duration) -> bool {
    let mut framer = FrameDecoder::new(512 * 1024 * 1024);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => framer.push(&buf[..n]),
        }
        while let Ok(Some(body)) = framer.next_frame() {
            for r in decode_responses(&body).unwrap_or_default() {
                if r.command == command && (r.code == rsp::SUCCEEDED || r.code == rsp::FAILED) {
                    return true;
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct AttackOutcome {
    commands: u64,
    connections: u64,
    /// Wall time per answered command.
    slowest: Duration,
}

/// One attacker: connects from `source`, defines modes, then repeats `command` until `stop`,
/// reconnecting when closed (a refused connection ends it).
async fn attacker(
    addr: SocketAddr,
    source: IpAddr,
    command: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> AttackOutcome {
    let mut out = AttackOutcome::default();
    let code = command[4];
    let modes = frame(&Command::DefineOperationalModes(OperationalModes(
        0xE000_0262,
    )));
    'reconnect: while !stop.load(Relaxed) {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(5), connect_from(source, addr)).await
        else {
            break;
        };
        out.connections += 1;
        if s.write_all(&modes).await.is_err()
            || !await_answer(&mut s, 0x06, Duration::from_secs(10)).await
        {
            break;
        }
        while !stop.load(Relaxed) {
            let t = Instant::now();
            if s.write_all(&command).await.is_err()
                || !await_answer(&mut s, code, Duration::from_secs(60)).await
            {
                continue 'reconnect;
            }
            out.commands += 1;
            out.slowest = out.slowest.max(t.elapsed());
        }
    }
    out
}

/// Every frame the good subscriber received, with the time its first point arrived.
#[derive(Default)]
struct Good {
    points: Vec<Expected>,
    arrivals: HashMap<i64, Instant>,
    errors: Vec<String>,
}

async fn watch_good(mut sub: Subscriber, stop: Arc<AtomicBool>, good: Arc<Mutex<Good>>) {
    while !stop.load(Relaxed) {
        let Ok(event) = tokio::time::timeout(Duration::from_millis(200), sub.next_event()).await
        else {
            continue;
        };
        let mut g = good.lock().unwrap();
        match event {
            Some(ClientEvent::Measurements(batch)) => {
                let now = Instant::now();
                for m in batch.iter() {
                    g.arrivals.entry(m.timestamp).or_insert(now);
                    g.points.push(Expected::from(m));
                }
            }
            Some(ClientEvent::Disconnected { reason }) => g.errors.push(reason),
            Some(_) => {}
            None => break,
        }
    }
    sub.stop().await;
}

fn subscriber(addr: SocketAddr) -> Subscriber {
    let mut config = SubscriberConfig::new(addr.to_string());
    config.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    Subscriber::start(config)
}

/// Time from start to the first data of a new subscriber.
async fn fresh_subscriber(addr: SocketAddr) -> Option<Duration> {
    let t = Instant::now();
    let mut sub = subscriber(addr);
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match sub.next_event().await {
                Some(ClientEvent::Measurements(b)) if !b.is_empty() => return,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    sub.stop().await;
    got.ok().map(|()| t.elapsed())
}

/// CPU time (user + system) of this process's threads, summed by whether the thread is a
/// command-pool thread (`sttp-cmd-*`) or not, from `/proc/self/task/*/stat`.
fn thread_cpu() -> (Duration, Duration) {
    let tick = Duration::from_secs(1) / 100; // USER_HZ
    let (mut pool, mut other) = (Duration::ZERO, Duration::ZERO);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Fields after the name: state is index 0, utime 11, stime 12.
        let ticks: u32 =
            fields[11].parse::<u32>().unwrap_or(0) + fields[12].parse::<u32>().unwrap_or(0);
        if name.starts_with("sttp-cmd-") {
            pool += tick * ticks;
        } else {
            other += tick * ticks;
        }
    }
    (pool, other)
}

#[derive(Debug)]
struct PhaseFigures {
    name: &'static str,
    commands: u64,
    connections: u64,
    cpu_per_command: Duration,
    max_job_cpu: Duration,
    slowest_answer: Duration,
    fresh: Option<Duration>,
    max_gap: Duration,
    /// CPU of command-pool threads and of every other thread during the attack.
    pool_cpu: Duration,
    other_cpu: Duration,
}

/// The largest time between the arrivals of consecutive frames of the good subscriber within
/// `[from, to]`.
fn max_gap(good: &Good, from: Instant, to: Instant) -> Duration {
    let mut times: Vec<(i64, Instant)> = good
        .arrivals
        .iter()
        .filter(|(_, t)| **t >= from && **t <= to)
        .map(|(k, t)| (*k, *t))
        .collect();
    times.sort_unstable();
    times
        .windows(2)
        .map(|w| w[1].1.saturating_duration_since(w[0].1))
        .max()
        .unwrap_or_default()
}

async fn run_attacks(pool: bool) -> (Vec<PhaseFigures>, Result<u64, String>, TestPublisher) {
    let config = PublisherConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        commands: CommandSettings {
            threads: if pool { 2 } else { 0 },
            ..CommandSettings::default()
        },
        ..PublisherConfig::default()
    };
    let mut tp = TestPublisher::start_with(config, SIGNALS).await;
    let addr = tp.publisher().local_addr();
    tp.stream(PERIOD, 0);
    let stop_good = Arc::new(AtomicBool::new(false));
    let good = Arc::new(Mutex::new(Good::default()));
    let watcher = tokio::spawn(watch_good(
        subscriber(addr),
        stop_good.clone(),
        good.clone(),
    ));
    // The good subscriber is streaming before the first attack.
    let t = Instant::now();
    while good.lock().unwrap().points.is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "good subscriber got no data"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut figures = Vec::new();
    for (a, (name, command)) in attacks().into_iter().enumerate() {
        let stats = tp.publisher().command_pool_stats();
        let (jobs0, cpu0) =
            stats.map_or((0, 0), |s| (s.jobs.load(Relaxed), s.cpu_us.load(Relaxed)));
        let inline_cpu0 = tp.publisher().stats().command_cpu_us.load(Relaxed);
        if let Some(s) = stats {
            s.max_job_cpu_us.store(0, Relaxed);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let command = Arc::new(command);
        let started = Instant::now();
        let cpu_before = thread_cpu();
        let attackers: Vec<_> = (1..=ATTACKERS)
            .map(|i| {
                let source = IpAddr::V4(Ipv4Addr::new(127, 60, a as u8, i));
                tokio::spawn(attacker(addr, source, command.clone(), stop.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let fresh = fresh_subscriber(addr).await;
        let rest = ATTACK_TIME.saturating_sub(started.elapsed());
        tokio::time::sleep(rest).await;
        stop.store(true, Relaxed);
        let mut outcome = AttackOutcome::default();
        for h in attackers {
            let o = h.await.unwrap();
            outcome.commands += o.commands;
            outcome.connections += o.connections;
            outcome.slowest = outcome.slowest.max(o.slowest);
        }
        let ended = Instant::now();
        let cpu_after = thread_cpu();
        let stats = tp.publisher().command_pool_stats();
        let (jobs, cpu_us, max_job) = match stats {
            Some(s) => (
                s.jobs.load(Relaxed) - jobs0,
                s.cpu_us.load(Relaxed) - cpu0,
                s.max_job_cpu_us.load(Relaxed),
            ),
            None => (
                outcome.commands,
                tp.publisher().stats().command_cpu_us.load(Relaxed) - inline_cpu0,
                0,
            ),
        };
        figures.push(PhaseFigures {
            name,
            commands: outcome.commands,
            connections: outcome.connections,
            cpu_per_command: Duration::from_micros(cpu_us / jobs.max(1)),
            max_job_cpu: Duration::from_micros(max_job),
            slowest_answer: outcome.slowest,
            fresh,
            max_gap: max_gap(&good.lock().unwrap(), started, ended),
            pool_cpu: cpu_after.0.saturating_sub(cpu_before.0),
            other_cpu: cpu_after.1.saturating_sub(cpu_before.1),
        });
        // Let the attackers' sources fall out of the failure throttle's view.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let end_frame = tp.stop_stream();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_good.store(true, Relaxed);
    watcher.await.unwrap();
    let g = good.lock().unwrap();
    let window = if g.errors.is_empty() {
        check_window(&tp, &g.points, end_frame, None)
    } else {
        Err(format!("good subscriber disconnected: {:?}", g.errors))
    };
    drop(g);
    (figures, window, tp)
}

fn print(title: &str, figures: &[PhaseFigures]) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "{:<38} {:>8} {:>6} {:>12} {:>12} {:>12} {:>10} {:>10} {:>9} {:>9}",
        "attack",
        "commands",
        "conns",
        "cpu/command",
        "max job cpu",
        "slowest ans",
        "fresh sub",
        "max gap",
        "pool cpu",
        "other cpu"
    );
    for f in figures {
        let _ = writeln!(
            out,
            "{:<38} {:>8} {:>6} {:>12.3?} {:>12.3?} {:>12.3?} {:>10} {:>10.1?} {:>9.2?} {:>9.2?}",
            f.name,
            f.commands,
            f.connections,
            f.cpu_per_command,
            f.max_job_cpu,
            f.slowest_answer,
            f.fresh.map_or("none".to_string(), |d| format!("{d:.2?}")),
            f.max_gap,
            f.pool_cpu,
            f.other_cpu,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_commands_leave_a_streaming_and_a_fresh_subscriber_unharmed() {
    let _serial = SERIAL.lock().await;
    let logs = capture_logs();
    logs.lock().unwrap().clear();
    let (figures, window, tp) = run_attacks(true).await;
    print("command pool on (protected)", &figures);
    let frames = window.expect("the good subscriber lost points during the attacks");
    eprintln!("good subscriber: every point of {frames} frames × {SIGNALS} signals");
    assert!(
        heavy_work_ran_on_the_pool(&figures),
        "the hostile commands' CPU was not spent on the command pool"
    );
    for f in &figures {
        assert!(
            f.commands > 0,
            "{}: no hostile command was answered",
            f.name
        );
        let fresh = f
            .fresh
            .unwrap_or_else(|| panic!("{}: fresh subscriber got no data", f.name));
        assert!(
            fresh <= FRESH_LIMIT,
            "{}: fresh subscriber needed {fresh:?} for its first data",
            f.name
        );
    }
    // A refusal storm: more connections from one address than `max_per_source` allows.
    let addr = tp.publisher().local_addr();
    let source = IpAddr::V4(Ipv4Addr::new(127, 61, 0, 1));
    let mut held = Vec::new();
    for _ in 0..40 {
        if let Ok(s) = connect_from(source, addr).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(held);
    // Every close is one log line with its reason, and every refusal is counted.
    let publisher = tp.publisher();
    let t = Instant::now();
    while publisher.stats().connections_open.load(Relaxed) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "connections stay open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let snapshot = sttp_control::stats_report::snapshot(publisher);
    let closes = publisher.stats().closes.closes();
    let mut logged: HashMap<String, u64> = HashMap::new();
    for line in text.lines().filter(|l| l.contains("connection closed")) {
        let kind = line
            .split("kind=")
            .nth(1)
            .and_then(|k| k.split_whitespace().next())
            .unwrap_or("?")
            .trim_matches('"')
            .to_string();
        *logged.entry(kind).or_default() += 1;
    }
    eprintln!("closes by reason (counter / log lines): {closes:?} / {logged:?}");
    for (label, counted) in &closes {
        assert_eq!(
            logged.remove(*label).unwrap_or(0),
            *counted,
            "closes labelled {label}: log lines and counter differ"
        );
    }
    assert!(
        logged.is_empty(),
        "log lines with unknown close kinds: {logged:?}"
    );
    assert!(closes.iter().map(|(_, n)| n).sum::<u64>() > 0);
    let refused_lines = text
        .lines()
        .filter(|l| l.contains("connection refused"))
        .count() as u64;
    let refusals = publisher.stats().closes.refusals();
    eprintln!("refusals (counter): {refusals:?}, log lines: {refused_lines}");
    let logged_kinds: u64 = refusals
        .iter()
        .filter(|(l, _)| *l != "throttled")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        logged_kinds, refused_lines,
        "refusal log lines and counters differ"
    );
    assert!(
        logged_kinds >= 8,
        "40 connections from one address: at least 8 refused"
    );
    assert_eq!(
        snapshot["connections"]["refused"].as_u64(),
        Some(publisher.stats().closes.refused_total()),
        "the stats file's refused count: {}",
        snapshot["connections"]
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_control_the_same_attacks_with_commands_on_the_connection_tasks() {
    let _serial = SERIAL.lock().await;
    let (figures, window, tp) = run_attacks(false).await;
    print("command pool off (negative control)", &figures);
    eprintln!("good subscriber window: {window:?}");
    // The check the protected run passes must fail here: the same work lands on the async
    // threads that accept connections and write data.
    assert!(
        !heavy_work_ran_on_the_pool(&figures),
        "negative control: the check passed with the pool off"
    );
    tp.shutdown().await;
}

/// True when, for the compute-bound attacks (small commands that cost milliseconds each), the
/// command-pool threads did the work (the table prints how it splits against every other
/// thread; the control, with the pool off, spends none there). The
/// 100 000-key Subscribe and the metadata loop are left out: most of their cost is moving
/// megabytes through loopback, on the attackers' and the readers' threads.
fn heavy_work_ran_on_the_pool(figures: &[PhaseFigures]) -> bool {
    figures
        .iter()
        .filter(|f| COMPUTE_BOUND.contains(&f.name))
        .all(|f| f.pool_cpu > Duration::ZERO)
}

const COMPUTE_BOUND: [&str; 2] = ["nested Replace filter", "14,000 ORDER BY statements"];

/// Installs a global tracing subscriber writing into a buffer the test can read.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Buf(buf.clone());
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_env_filter("info")
        .try_init();
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_its_cpu_budget_is_closed_counted_and_its_source_throttled() {
    let _serial = SERIAL.lock().await;
    let order_by = "FILTER ActiveMeasurements WHERE True ORDER BY PointTag;".repeat(14_000);
    let command = Arc::new(subscribe_with(filter(&order_by)));
    // Budget on, then the negative control with the budget off: the same attacker is never closed.
    for budget_on in [true, false] {
        let config = PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            commands: CommandSettings {
                threads: 2,
                cpu_burst: if budget_on {
                    Duration::from_millis(30)
                } else {
                    Duration::ZERO
                },
                cpu_rate: 0.0,
            },
            limits: sttp_control::server::Limits {
                failure_threshold: 3,
                ..Default::default()
            },
            ..PublisherConfig::default()
        };
        let tp = TestPublisher::start_with(config, SIGNALS).await;
        let addr = tp.publisher().local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let source = IpAddr::V4(Ipv4Addr::new(127, 62, 0, 1));
        let run = tokio::spawn(attacker(addr, source, command.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Relaxed);
        let outcome = run.await.unwrap();
        let stats = tp.publisher().stats();
        let closes = stats.closes.close_count("cpu_budget");
        eprintln!(
            "budget {}: {} commands answered on {} connections, {closes} cpu_budget closes, \
             {} throttle incidents, {} throttled refusals",
            if budget_on { "30 ms" } else { "off" },
            outcome.commands,
            outcome.connections,
            stats.throttle_incidents.load(Relaxed),
            stats.refused_throttled.load(Relaxed),
        );
        if budget_on {
            assert_eq!(
                closes, 3,
                "three connections closed over budget, then throttled"
            );
            assert_eq!(stats.cpu_budget_closes.load(Relaxed), 3);
            assert_eq!(stats.throttle_incidents.load(Relaxed), 1);
            assert!(stats.refused_throttled.load(Relaxed) >= 1);
        } else {
            assert_eq!(closes, 0);
            assert_eq!(
                outcome.connections, 1,
                "the control's connection was closed"
            );
            assert!(outcome.commands >= 5, "{} commands", outcome.commands);
        }
        tp.shutdown().await;
    }
}
