//! T5 — slow-subscriber isolation (test-plan.md §2.2): with one subscriber that stops reading,
//! the other subscribers see zero gaps, the stalled one's losses are dropped and counted on its
//! own queue, and the publisher's ingest rate stays within ±5 % of the run without it.
//!
//! The source publishes at a fixed rate with absolute deadlines (a late frame is published at
//! once, so the achieved rate only falls short if `publish` itself blocks). Phase A runs five
//! reading subscribers; phase B adds the stalled one. The ingest rate is the source-side point
//! counter over each phase, so B ≈ A shows the publisher never waited for the slow reader.
//! Phase B starts only once the stalled subscriber's queue overflowed (its kernel send buffer,
//! up to `tcp_wmem` max = 4 MiB here, absorbs the first seconds), at most 60 s after it joined.
//!
//! The UDP variant: a UDP subscriber whose data socket is never read loses only its own
//! datagrams (the kernel counts them on that socket), while UDP readers see zero gaps and the
//! ingest rate is unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_control::client::{Subscriber, SubscriberConfig};
use sttp_control::server::PublisherConfig;
use sttp_dataplane::SourcePoint;
use sttp_proto::command::Command;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::opmodes::OperationalModes;
use sttp_tests::{
    check_points, collect_for, value_of, Expected, TestPublisher, FLAGS, FRAME_TICKS, T0,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIGNALS: usize = 300;
const FRAMES_PER_SEC: u64 = 200;
const READERS: usize = 5;
const PHASE: Duration = Duration::from_secs(5);

fn cmd(c: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(StringEncoding::Utf8, &mut out);
    out
}

/// Publishes the test stream (same values as `TestPublisher::stream`) at a fixed frame rate with
/// absolute deadlines until `stop`.
fn paced_stream(tp: &TestPublisher, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let catalog = tp.publisher().catalog();
    let indices: Vec<u32> = tp
        .signals
        .iter()
        .map(|g| catalog.signal_index(g).unwrap())
        .collect();
    let source = tp.publisher().source();
    std::thread::spawn(move || {
        let start = Instant::now();
        let period = Duration::from_secs(1) / FRAMES_PER_SEC as u32;
        let mut f = 0u64;
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
            let due = start + period * f as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        f
    })
}

/// Every point is what the stream published (`check_points`), and every (signal, frame) from
/// the first received frame up to `end` (exclusive) arrived exactly once. A flat table instead
/// of `check_window`'s list scans: the readers receive millions of points here.
fn no_gaps(tp: &TestPublisher, got: &[Expected], end: u64) -> Result<u64, String> {
    check_points(tp, got)?;
    let positions = tp.positions();
    let first = got
        .iter()
        .map(|e| ((e.ticks - T0) / FRAME_TICKS) as u64)
        .min()
        .ok_or("nothing received")?;
    let frames = end.saturating_sub(first) as usize;
    let mut seen = vec![0u8; frames * SIGNALS];
    for e in got {
        let f = ((e.ticks - T0) / FRAME_TICKS) as u64;
        if f >= end {
            continue;
        }
        let cell = &mut seen[(f - first) as usize * SIGNALS + positions[&e.signal]];
        *cell = cell.saturating_add(1);
    }
    if let Some(i) = seen.iter().position(|n| *n != 1) {
        return Err(format!(
            "signal position {} frame {} arrived {} times ({} cells wrong)",
            i % SIGNALS,
            first + (i / SIGNALS) as u64,
            seen[i],
            seen.iter().filter(|n| **n != 1).count()
        ));
    }
    Ok(frames as u64)
}

/// Source points published per second over `window`.
async fn ingest_rate(tp: &TestPublisher, window: Duration) -> f64 {
    let stats = tp.publisher().source();
    let p0 = stats.stats().points.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let p1 = stats.stats().points.load(Ordering::Relaxed);
    (p1 - p0) as f64 / t0.elapsed().as_secs_f64()
}

/// A subscriber that negotiates and subscribes by hand with a tiny receive window, confirms the
/// signal index cache, then never reads again.
async fn stalled_subscriber(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let mut hello = cmd(&Command::DefineOperationalModes(OperationalModes(
        0xE000_0262,
    )));
    hello.extend(cmd(&Command::Subscribe {
        flags: 2,
        connection_string: "filterExpression={FILTER ActiveMeasurements WHERE True}".into(),
    }));
    stalled.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.windows(2).any(|w| w == [0x83, 0x02]) {
        assert!(
            Instant::now() < deadline,
            "no signal index cache within 10 s"
        );
        let n = stalled.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "publisher closed the stalled subscriber before its cache"
        );
        seen.extend_from_slice(&buf[..n]);
    }
    stalled
        .write_all(&cmd(&Command::ConfirmUpdateSignalIndexCache))
        .await
        .unwrap();
    stalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_neither_gaps_the_others_nor_slows_ingest() {
    let config = PublisherConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        subscriber_queue_frames: 16,
        ..Default::default()
    };
    let tp = TestPublisher::start_with(config, SIGNALS).await;
    let addr = tp.publisher().local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = paced_stream(&tp, stop.clone());

    // Five reading subscribers, each collecting everything until told to stop.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut c = SubscriberConfig::new(addr.to_string());
        c.session.settings = SubscriptionSettings {
            filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
            ..SubscriptionSettings::default()
        };
        let mut done = done_rx.clone();
        readers.push(tokio::spawn(async move {
            let mut sub = Subscriber::start(c);
            let mut got: Vec<Expected> = Vec::new();
            tokio::select! {
                _ = collect_for(&mut sub, Duration::from_secs(120), &mut got) => {}
                _ = done.wait_for(|d| *d) => {}
            }
            sub.stop().await;
            got
        }));
    }
    // Let every reader subscribe and settle, then phase A.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rate_a = ingest_rate(&tp, PHASE).await;

    // Phase B: the stalled subscriber joins; measure once its queue overflowed.
    let stalled = stalled_subscriber(addr).await;
    let stalled_peer = stalled.local_addr().unwrap();
    let joined = Instant::now();
    let stalled_drops = || {
        tp.publisher()
            .subscription_stats()
            .iter()
            .filter(|(peer, _)| *peer == stalled_peer)
            .map(|(_, s)| s.dropped_queue_full)
            .sum::<u64>()
    };
    while stalled_drops() == 0 {
        assert!(
            joined.elapsed() < Duration::from_secs(60),
            "the stalled subscriber's queue never overflowed: {:?}",
            tp.publisher().subscription_stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "stalled subscriber's queue overflowed {:.1} s after it joined",
        joined.elapsed().as_secs_f64()
    );
    let rate_b = ingest_rate(&tp, PHASE).await;
    let stats = tp.publisher().subscription_stats();
    tokio::time::sleep(Duration::from_secs(1)).await;
    done_tx.send(true).unwrap();

    let mut received = Vec::new();
    for r in readers {
        received.push(r.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let frames = stream.join().unwrap();

    let target = (SIGNALS as u64 * FRAMES_PER_SEC) as f64;
    let change = (rate_b - rate_a) / rate_a;
    println!(
        "T5: source target {target} points/s; ingest A (5 readers) {rate_a:.0}/s, \
         B (+1 stalled) {rate_b:.0}/s, change {:+.2} % (bound ±5 %); {frames} frames published",
        change * 100.0
    );
    for (i, got) in received.iter().enumerate() {
        let end = ((got.iter().map(|e| e.ticks).max().expect("reader got data") - T0) / FRAME_TICKS)
            as u64;
        let checked = no_gaps(&tp, got, end)
            .unwrap_or_else(|e| panic!("reader {i} has a gap or a bad point: {e}"));
        println!("reader {i}: {checked} frames, {} points, 0 gaps", got.len());
        assert!(
            checked > FRAMES_PER_SEC * 10,
            "reader {i} saw only {checked} frames"
        );
    }
    #[allow(clippy::type_complexity)]
    let (stalled_stats, others): (Vec<&(std::net::SocketAddr, _)>, Vec<_>) =
        stats.iter().partition(|(peer, _)| *peer == stalled_peer);
    println!("stalled: {stalled_stats:?}");
    assert_eq!(
        stalled_stats.len(),
        1,
        "the stalled subscriber's counters: {stats:?}"
    );
    assert!(
        stalled_stats[0].1.dropped_queue_full > 0,
        "the stalled subscriber's data is dropped and counted: {stats:?}"
    );
    assert_eq!(others.len(), READERS, "{stats:?}");
    for (peer, s) in others {
        assert_eq!(s.dropped_queue_full, 0, "reader {peer} lost data: {s:?}");
    }
    assert!(
        change.abs() <= 0.05,
        "ingest changed by {:.2} % with a stalled subscriber (A {rate_a:.0}/s, B {rate_b:.0}/s)",
        change * 100.0
    );
    drop(stalled);
    tp.shutdown().await;
}

/// Kernel drops counted on the UDP socket bound to `port` (the `drops` column of
/// `/proc/net/udp`): that socket's own losses, independent of any other test on the host.
fn udp_socket_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let wanted = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&wanted))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// A UDP subscriber (plain datagrams, compact format) negotiated by hand whose data socket, with
/// a tiny receive buffer, is never read. Returns the TCP stream (drained in the background) and
/// the unread socket.
async fn stalled_udp_subscriber(
    addr: std::net::SocketAddr,
) -> (tokio::task::JoinHandle<()>, std::net::UdpSocket) {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([0, 0, 0, 0], 0)).into())
        .unwrap();
    let udp: std::net::UdpSocket = socket.into();
    let port = udp.local_addr().unwrap().port();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Protocol version 2, UTF-8 strings, no compression: the compact format a UDP channel uses.
    let mut hello = cmd(&Command::DefineOperationalModes(OperationalModes(
        0x0000_0202,
    )));
    hello.extend(cmd(&Command::Subscribe {
        flags: 2,
        connection_string: format!(
            "filterExpression={{FILTER ActiveMeasurements WHERE True}};dataChannel={{localport={port}}}"
        ),
    }));
    tcp.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.windows(2).any(|w| w == [0x83, 0x02]) {
        assert!(
            Instant::now() < deadline,
            "no signal index cache within 10 s"
        );
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "publisher closed the UDP subscriber before its cache"
        );
        seen.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(&cmd(&Command::ConfirmUpdateSignalIndexCache))
        .await
        .unwrap();
    // The command channel keeps being read; only the data socket stalls.
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    (drain, udp)
}

/// T5, UDP: a UDP subscriber whose socket is never read only loses its own datagrams (its
/// socket overflows, counted by the kernel on that socket); UDP readers see zero gaps and the
/// publisher's ingest rate is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_udp_subscriber_only_loses_its_own_datagrams() {
    const UDP_READERS: usize = 3;
    let tp = TestPublisher::start_with(
        PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        SIGNALS,
    )
    .await;
    let addr = tp.publisher().local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = paced_stream(&tp, stop.clone());
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for _ in 0..UDP_READERS {
        let mut c = SubscriberConfig::new(addr.to_string());
        c.session.settings = SubscriptionSettings {
            filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
            ..SubscriptionSettings::default()
        };
        // Port 0: each reader binds its own free port and names it (no pick-then-release).
        c.udp = Some(sttp_control::client::UdpChannel {
            port: 0,
            cipher: sttp_control::client::UdpCipherChoice::AesGcm,
        });
        let mut done = done_rx.clone();
        readers.push(tokio::spawn(async move {
            let mut sub = Subscriber::start(c);
            let mut got: Vec<Expected> = Vec::new();
            tokio::select! {
                _ = collect_for(&mut sub, Duration::from_secs(60), &mut got) => {}
                _ = done.wait_for(|d| *d) => {}
            }
            let stats = sub.stats();
            sub.stop().await;
            (got, stats)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rate_a = ingest_rate(&tp, PHASE).await;
    let (drain, stalled) = stalled_udp_subscriber(addr).await;
    let stalled_port = stalled.local_addr().unwrap().port();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rate_b = ingest_rate(&tp, PHASE).await;
    let stalled_drops = udp_socket_drops(stalled_port);
    let stats = tp.publisher().subscription_stats();
    done_tx.send(true).unwrap();
    let mut received = Vec::new();
    for r in readers {
        received.push(r.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    stream.join().unwrap();
    let change = (rate_b - rate_a) / rate_a;
    println!(
        "T5 UDP: ingest A {rate_a:.0}/s, B (+1 unread UDP socket) {rate_b:.0}/s, change {:+.2} % \
         (bound ±5 %); the unread socket's kernel drops: {stalled_drops}; publisher: {stats:?}",
        change * 100.0
    );
    assert!(
        stalled_drops > 0,
        "the unread socket overflowed and the kernel counted its drops"
    );
    for (i, (got, s)) in received.iter().enumerate() {
        let end = ((got.iter().map(|e| e.ticks).max().expect("reader got data") - T0) / FRAME_TICKS)
            as u64;
        let frames = no_gaps(&tp, got, end)
            .unwrap_or_else(|e| panic!("UDP reader {i} has a gap or a bad point: {e}"));
        println!("UDP reader {i}: {frames} frames, 0 gaps; {s:?}");
        assert!(
            frames > FRAMES_PER_SEC * 8,
            "UDP reader {i}: {frames} frames"
        );
        assert!(s.datagrams_received > 0, "reader {i} used UDP: {s:?}");
        assert_eq!(s.auth_failures + s.replays + s.decode_errors, 0, "{s:?}");
    }
    for (peer, s) in &stats {
        assert_eq!(
            s.dropped_queue_full, 0,
            "{peer}: the publisher never queued up: {s:?}"
        );
    }
    assert!(
        change.abs() <= 0.05,
        "ingest changed by {:.2} % with an unread UDP subscriber",
        change * 100.0
    );
    drain.abort();
    drop(stalled);
    tp.shutdown().await;
}
