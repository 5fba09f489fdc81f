//! Dead-peer detection on the publisher (issue 16, docs/liveness.md): a subscriber that stops
//! acknowledging — cut off behind a black-holed path, killed behind it, or alive but no longer
//! reading — is closed and freed within the documented time, counted once in
//! `dead_peer_closes` and logged once at warn with its reason, while a good subscriber on
//! another path sees no gap.
//!
//! The namespace cases run the in-process publisher on threads that entered the publisher
//! namespace of a private pub — router — sub topology (`sttp_tests::netns`): sockets belong to
//! the namespace of the thread that creates them, and threads inherit it. The victim
//! subscriber runs in the subscriber namespace, behind the router, where an nftables rule drops
//! everything to and from it; the good subscriber runs in the router namespace, whose link to
//! the publisher never passes the router's forward hook. Negative control: with every check off
//! the black-holed session is still open after the same time.
//!
//! The loopback case: a subscriber that stops reading while its kernel keeps acknowledging
//! (zero window) is closed by the writer's no-progress check; with the check off it stays.
//!
//! Needs root and `ip netns` for the namespace cases (skipped with a message otherwise; a
//! failure under `CI=true`) and `nft`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sttp_control::client::{Subscriber, SubscriberConfig};
use sttp_control::server::{Limits, PublisherConfig, PublisherStats};
use sttp_proto::command::Command;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::opmodes::OperationalModes;
use sttp_tests::netns::{Role, Topology, PUB_ADDR, SUB_ADDR};
use sttp_tests::{check_window, collect_for, Expected, TestPublisher, FRAME_TICKS, T0};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// The documented bound (docs/liveness.md): a dead peer is closed and freed within this time.
const BOUND: Duration = Duration::from_secs(30);
const SIGNALS: usize = 50;
/// About 30 frames/s.
const PERIOD: Duration = Duration::from_millis(33);

// ---------------------------------------------------------------------------------------------
// Support: namespaces, captured logs, hand-made subscribers.
// ---------------------------------------------------------------------------------------------

/// Moves the calling thread into network namespace `ns` (threads it spawns inherit it).
fn enter_netns(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // Safety: setns takes a valid open namespace fd (kept open across the call) and a flag; it
    // changes only the calling thread's network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({ns}): {}", std::io::Error::last_os_error());
}

/// Log lines written by the publisher, for one test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }
}

/// A multi-threaded runtime whose threads (and the caller's, while the guard lives) log into
/// `logs`. Built on the calling thread, so its workers share the caller's network namespace.
fn runtime_logging_to(logs: &Logs) -> (tokio::runtime::Runtime, tracing::dispatcher::DefaultGuard) {
    let writer = logs.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let guard = tracing::dispatcher::set_default(&dispatch);
    let for_workers = dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the thread's whole life.
            std::mem::forget(tracing::dispatcher::set_default(&for_workers));
        })
        .build()
        .unwrap();
    (rt, guard)
}

fn cmd(c: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(StringEncoding::Utf8, &mut out);
    out
}

/// A subscriber negotiated by hand (compressed TSSC over TCP): subscribes to every signal,
/// waits for the signal index cache and confirms it. `rcvbuf` shrinks its receive buffer.
async fn raw_subscriber(addr: SocketAddr, rcvbuf: Option<u32>) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut stream = socket.connect(addr).await.unwrap();
    let mut hello = cmd(&Command::DefineOperationalModes(OperationalModes(
        0xE000_0262,
    )));
    hello.extend(cmd(&Command::Subscribe {
        flags: 2,
        connection_string: "filterExpression={FILTER ActiveMeasurements WHERE True}".into(),
    }));
    stream.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    // UpdateSignalIndexCache is response code 0x83 for command Subscribe (0x02).
    while !seen.windows(2).any(|w| w == [0x83, 0x02]) {
        assert!(
            Instant::now() < deadline,
            "no signal index cache within 10 s"
        );
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "publisher closed the subscriber before its cache");
        seen.extend_from_slice(&buf[..n]);
    }
    stream
        .write_all(&cmd(&Command::ConfirmUpdateSignalIndexCache))
        .await
        .unwrap();
    stream
}

/// The victim: a raw subscriber in namespace `ns` that reads (and counts) everything until
/// told to die, which closes its socket as a killed process's would.
struct Victim {
    addr: SocketAddr,
    bytes: Arc<AtomicU64>,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Victim {
    fn start(ns: String, publisher: SocketAddr) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill, mut killed) = oneshot::channel::<()>();
        let counter = bytes.clone();
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut stream = raw_subscriber(publisher, None).await;
                addr_tx.send(stream.local_addr().unwrap()).unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    tokio::select! {
                        _ = &mut killed => return,
                        read = stream.read(&mut buf) => match read {
                            Ok(n) if n > 0 => { counter.fetch_add(n as u64, Relaxed); }
                            _ => return,
                        }
                    }
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("victim subscribed");
        Self {
            addr,
            bytes,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Closes the victim's socket and waits for its thread.
    fn kill(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
    }
}

/// The good subscriber: our client in namespace `ns`, collecting every point until stopped.
fn good_subscriber(
    ns: String,
    publisher: SocketAddr,
) -> (oneshot::Sender<()>, std::thread::JoinHandle<Vec<Expected>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        enter_netns(&ns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut c = SubscriberConfig::new(publisher.to_string());
            c.session.settings = SubscriptionSettings {
                filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
                ..SubscriptionSettings::default()
            };
            let mut sub = Subscriber::start(c);
            let mut got = Vec::new();
            tokio::select! {
                _ = collect_for(&mut sub, Duration::from_secs(120), &mut got) => {}
                _ = stopped => {}
            }
            sub.stop().await;
            got
        })
    });
    (stop, thread)
}

fn frame_of(e: &Expected) -> u64 {
    ((e.ticks - T0) / FRAME_TICKS) as u64
}

/// The publisher's TCP sockets towards the subscriber namespace (`ss`: state, Recv-Q, Send-Q).
fn sockets_to_sub(topo: &Topology) -> String {
    let out = topo
        .command(Role::Pub, "ss")
        .args(["-tnoi", "dst", &SUB_ADDR.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn session_open(tp: &TestPublisher, peer: SocketAddr) -> bool {
    tp.publisher()
        .subscription_stats()
        .iter()
        .any(|(p, _)| *p == peer)
}

fn stats_line(s: &PublisherStats) -> String {
    format!(
        "accepted {} open {} dead_peer_closes {} protocol_closes {} memory_budget_closes {}",
        s.connections_accepted.load(Relaxed),
        s.connections_open.load(Relaxed),
        s.dead_peer_closes.load(Relaxed),
        s.protocol_closes.load(Relaxed),
        s.memory_budget_closes.load(Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// The namespace cases.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Closed as a dead peer within [`BOUND`], with a log line containing this text.
    Closed(&'static str),
    /// Still open after [`BOUND`] (the negative control).
    StillOpen,
}

/// One black-hole run: publisher, good subscriber (router namespace), victim (subscriber
/// namespace); then everything to and from the victim is dropped (and the victim killed when
/// `kill`). Returns the measured close time.
fn black_hole(name: &str, limits: Limits, kill: bool, expect: Expect) -> Option<Duration> {
    let topo = Topology::create()?;
    let (pub_ns, rtr_ns, sub_ns) = (
        topo.name(Role::Pub).to_owned(),
        topo.name(Role::Router).to_owned(),
        topo.name(Role::Sub).to_owned(),
    );
    let name = name.to_owned();
    // The publisher side lives on a thread in the publisher namespace.
    let topo = Arc::new(topo);
    let topo_in = topo.clone();
    let measured = std::thread::spawn(move || {
        enter_netns(&pub_ns);
        let logs = Logs::default();
        let (rt, _guard) = runtime_logging_to(&logs);
        rt.block_on(async move {
            let config = PublisherConfig {
                listen: SocketAddr::new(PUB_ADDR.into(), 0),
                limits,
                ..PublisherConfig::default()
            };
            let mut tp = TestPublisher::start_with(config, SIGNALS).await;
            let addr = tp.publisher().local_addr();
            tp.stream(PERIOD, 0);
            let (stop_good, good) = good_subscriber(rtr_ns, addr);
            let mut victim = Victim::start(sub_ns, addr);
            // Both stream for a while.
            let settle = Instant::now();
            while victim.bytes.load(Relaxed) < 10_000 || tp.publisher().subscription_stats().len() < 2 {
                assert!(settle.elapsed() < Duration::from_secs(15), "[{name}] subscribers never streamed: {}", stats_line(tp.publisher().stats()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let stats = tp.publisher().stats();
            assert_eq!(stats.connections_open.load(Relaxed), 2, "[{name}] {}", stats_line(stats));
            let dead0 = stats.dead_peer_closes.load(Relaxed);
            let hole_frame = tp.current_frame();
            let sub = SUB_ADDR.to_string();
            topo_in.add_drop("to-sub", &format!("ip daddr {sub}")).unwrap();
            topo_in.add_drop("from-sub", &format!("ip saddr {sub}")).unwrap();
            let hole = Instant::now();
            if kill {
                victim.kill();
            }
            println!("[{name}] black hole at frame {hole_frame}; publisher sockets: {}", sockets_to_sub(&topo_in));
            let mut closed_at = None;
            let mut probed = false;
            let mut freed_at = None;
            let deadline = BOUND + Duration::from_secs(5);
            while hole.elapsed() < deadline {
                if closed_at.is_none() && stats.dead_peer_closes.load(Relaxed) > dead0 {
                    closed_at = Some(hole.elapsed());
                }
                if freed_at.is_none()
                    && !session_open(&tp, victim.addr)
                    && stats.connections_open.load(Relaxed) == 1
                {
                    freed_at = Some(hole.elapsed());
                }
                if !probed && hole.elapsed() > Duration::from_secs(10) {
                    probed = true;
                    println!("[{name}] 10 s into the black hole: {}", sockets_to_sub(&topo_in));
                }
                if expect != Expect::StillOpen && closed_at.is_some() && freed_at.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let result = match expect {
                Expect::Closed(reason) => {
                    let closed = closed_at.unwrap_or_else(|| panic!("[{name}] the victim's session was not closed as a dead peer within {:?}: {}; sockets: {}", deadline, stats_line(stats), sockets_to_sub(&topo_in)));
                    let freed = freed_at.unwrap_or_else(|| panic!("[{name}] the session was counted but not freed: {}", stats_line(stats)));
                    println!("[{name}] closed {:.2} s and freed {:.2} s after the black hole; kernel sockets after: {}", closed.as_secs_f64(), freed.as_secs_f64(), sockets_to_sub(&topo_in));
                    assert!(closed <= BOUND && freed <= BOUND, "[{name}] closed {closed:?}, freed {freed:?}: over the documented {BOUND:?}");
                    // Exactly once, and it stays that way.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    assert_eq!(stats.dead_peer_closes.load(Relaxed) - dead0, 1, "[{name}] {}", stats_line(stats));
                    let peer = victim.addr.to_string();
                    let warn = logs.lines_with(&["WARN", "dead peer", &peer]);
                    println!("[{name}] log: {warn:?}");
                    assert_eq!(warn.len(), 1, "[{name}] one warn line for the dead peer: {warn:?}");
                    assert!(warn[0].contains(reason) && warn[0].contains("queued_bytes="), "[{name}] reason and queued bytes in {:?}", warn[0]);
                    assert_eq!(logs.lines_with(&["connection closed", &peer, "dead peer"]).len(), 1, "[{name}] the close reason is the dead peer");
                    Some(closed)
                }
                Expect::StillOpen => {
                    let sockets = sockets_to_sub(&topo_in);
                    println!("[{name}] negative control: {:.1} s after the black hole: {}; publisher sockets: {sockets}", hole.elapsed().as_secs_f64(), stats_line(stats));
                    assert_eq!(closed_at, None, "[{name}] closed with every check off");
                    assert!(session_open(&tp, victim.addr), "[{name}] the session ended with every check off");
                    assert_eq!(stats.connections_open.load(Relaxed), 2);
                    assert_eq!(stats.dead_peer_closes.load(Relaxed), dead0);
                    None
                }
            };
            // The good subscriber never noticed.
            let _ = stop_good.send(());
            let got = good.join().expect("the good subscriber stayed connected");
            let end = got.iter().map(frame_of).max().expect("good subscriber got data");
            let first = got.iter().map(frame_of).min().unwrap_or(0);
            assert!(first < hole_frame && end > hole_frame + 15 * 30, "[{name}] the good subscriber's data spans the black hole: frames {first}..{end}, hole at {hole_frame}");
            let frames = check_window(&tp, &got, end, None).unwrap_or_else(|e| panic!("[{name}] the good subscriber has a gap: {e}"));
            println!("[{name}] good subscriber: {frames} frames x {SIGNALS} signals, 0 gaps, across the black hole");
            drop(victim);
            tp.shutdown().await;
            result
        })
    })
    .join();
    drop(topo);
    measured.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn a_black_holed_subscriber_is_closed_and_freed_within_the_documented_time() {
    if let Some(t) = black_hole(
        "black hole",
        Limits::default(),
        false,
        Expect::Closed("dead peer"),
    ) {
        println!(
            "black hole, default limits: closed after {:.2} s",
            t.as_secs_f64()
        );
    }
}

#[test]
fn a_subscriber_killed_behind_a_black_hole_is_closed_and_freed_within_the_documented_time() {
    if let Some(t) = black_hole(
        "killed",
        Limits::default(),
        true,
        Expect::Closed("dead peer"),
    ) {
        println!(
            "killed behind a black hole, default limits: closed after {:.2} s",
            t.as_secs_f64()
        );
    }
}

#[test]
fn the_no_progress_check_alone_closes_a_black_holed_subscriber() {
    // Kernel timers off: only the writer's check can act, once the send buffer is full.
    let limits = Limits {
        tcp_keepalive_idle: None,
        tcp_user_timeout: None,
        ..Limits::default()
    };
    if let Some(t) = black_hole(
        "stall only",
        limits,
        false,
        Expect::Closed("no progress on the send queue"),
    ) {
        println!(
            "black hole, no-progress check alone: closed after {:.2} s",
            t.as_secs_f64()
        );
    }
}

#[test]
fn the_tcp_user_timeout_alone_closes_a_black_holed_subscriber() {
    // The kernel's verdict alone: no keep-alive, no writer check.
    let limits = Limits {
        tcp_keepalive_idle: None,
        send_stall_timeout: None,
        ..Limits::default()
    };
    if let Some(t) = black_hole(
        "user timeout only",
        limits,
        false,
        Expect::Closed("the connection timed out"),
    ) {
        println!(
            "black hole, TCP_USER_TIMEOUT alone: closed after {:.2} s",
            t.as_secs_f64()
        );
    }
}

#[test]
fn negative_control_with_every_check_off_a_black_holed_session_stays_open() {
    let limits = Limits {
        tcp_keepalive_idle: None,
        tcp_user_timeout: None,
        send_stall_timeout: None,
        ..Limits::default()
    };
    black_hole("all off", limits, false, Expect::StillOpen);
}

// ---------------------------------------------------------------------------------------------
// Loopback: a subscriber that stops reading while its kernel keeps acknowledging.
// ---------------------------------------------------------------------------------------------

/// Runs a publisher streaming fast on loopback with `limits`, a raw subscriber with a 4 KiB
/// receive buffer that never reads after subscribing, and waits up to `wait` for a dead-peer
/// close. Returns (time from the last read to the close if it happened, drops counted on the
/// stalled subscription meanwhile, the dead-peer log lines).
fn stop_reading(limits: Limits, wait: Duration) -> (Option<Duration>, u64, Vec<String>) {
    let logs = Logs::default();
    let (rt, _guard) = runtime_logging_to(&logs);
    rt.block_on(async {
        let config = PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            // A small budget: data is dropped (and counted) soon after the writer blocks.
            limits: Limits {
                session_memory_budget: 256 * 1024,
                ..limits
            },
            ..PublisherConfig::default()
        };
        let mut tp = TestPublisher::start_with(config, 300).await;
        let addr = tp.publisher().local_addr();
        tp.stream(Duration::from_millis(2), 0);
        let stalled = raw_subscriber(addr, Some(4096)).await;
        let peer = stalled.local_addr().unwrap();
        let stopped = Instant::now();
        let stats = tp.publisher().stats();
        let mut closed = None;
        let mut drops = 0;
        while stopped.elapsed() < wait {
            if let Some((_, s)) = tp
                .publisher()
                .subscription_stats()
                .into_iter()
                .find(|(p, _)| *p == peer)
            {
                drops = s.dropped_queue_full;
            }
            if stats.dead_peer_closes.load(Relaxed) > 0 {
                closed = Some(stopped.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if closed.is_some() {
            // Freed, and counted once.
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(!session_open(&tp, peer), "counted but not freed");
            assert_eq!(stats.dead_peer_closes.load(Relaxed), 1);
            assert_eq!(stats.connections_open.load(Relaxed), 0);
        } else {
            assert!(
                session_open(&tp, peer),
                "the stalled session ended some other way"
            );
        }
        let lines = logs.lines_with(&["WARN", "dead peer", &peer.to_string()]);
        drop(stalled);
        tp.shutdown().await;
        (closed, drops, lines)
    })
}

#[test]
fn a_subscriber_that_stops_reading_is_closed_by_the_no_progress_check() {
    const STALL: Duration = Duration::from_secs(5);
    // Kernel timers off (TCP_USER_TIMEOUT would also end a zero window): the writer's check
    // alone decides.
    let limits = Limits {
        tcp_keepalive_idle: None,
        tcp_user_timeout: None,
        send_stall_timeout: Some(STALL),
        ..Limits::default()
    };
    let (closed, drops, lines) = stop_reading(limits.clone(), Duration::from_secs(60));
    let closed = closed.expect("the stalled subscriber was closed as a dead peer within 60 s");
    println!(
        "stopped reading: closed {:.2} s after its last read (stall timeout {STALL:?}; the rest is \
         the time the socket buffers took to fill); {drops} data packets dropped meanwhile; log: {lines:?}",
        closed.as_secs_f64()
    );
    assert!(
        closed >= STALL,
        "closed before the stall timeout: {closed:?}"
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("no progress on the send queue for 5.0 s"),
        "{lines:?}"
    );
    // Negative control: the same subscriber, the check off, is still open well after that.
    let off = Limits {
        send_stall_timeout: None,
        ..limits
    };
    let (closed_off, drops_off, lines_off) = stop_reading(off, closed + STALL);
    println!(
        "check off: still open after {:.1} s, {drops_off} data packets dropped (it is stalled)",
        (closed + STALL).as_secs_f64()
    );
    assert_eq!(closed_off, None);
    assert!(lines_off.is_empty());
    assert!(
        drops_off > 0,
        "the subscriber without the check really stalled"
    );
}
