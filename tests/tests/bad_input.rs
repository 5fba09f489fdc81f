//! Hostile and malformed input: while one good subscriber receives a stream, 100 connections
//! send garbage of every kind. Each gets a Failed response with its reason or a clean
//! disconnect; the publisher never panics; the good subscriber sees no gap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use sttp_control::client::{ClientEvent, Subscriber, SubscriberConfig};
use sttp_proto::command::Command;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::opmodes::OperationalModes;
use sttp_tests::{check_window, collect_for, Expected, TestPublisher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A little deterministic byte generator.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn cmd(c: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    c.encode(StringEncoding::Utf8, &mut out);
    out
}

/// The garbage connection number `i` sends.
fn garbage(i: u64) -> Vec<u8> {
    let modes = cmd(&Command::DefineOperationalModes(OperationalModes(
        0xE000_0262,
    )));
    match i % 10 {
        // Pure noise.
        0 => noise(i, 4096),
        // A frame claiming 2 GiB.
        1 => vec![0x7F, 0xFF, 0xFF, 0xFF, 0x01, 0x02],
        // A zero-length frame.
        2 => vec![0, 0, 0, 0, 0, 0, 0, 5, 6],
        // Unsupported protocol version.
        3 => cmd(&Command::DefineOperationalModes(OperationalModes(
            0xE000_0209,
        ))),
        // Valid modes, then noise framed as commands.
        4 => {
            let mut b = modes;
            for k in 0..50 {
                let body = noise(i * 100 + k, 1 + (k as usize % 40));
                b.extend_from_slice(&(body.len() as u32).to_be_bytes());
                b.extend_from_slice(&body);
            }
            b
        }
        // Subscribe with a broken filter and a broken connection string.
        5 => {
            let mut b = modes;
            b.extend(cmd(&Command::Subscribe {
                flags: 2,
                connection_string: "filterExpression={FILTER ActiveMeasurements WHERE ((((".into(),
            }));
            b.extend(cmd(&Command::Subscribe {
                flags: 2,
                connection_string: "includeTime=maybe;filterExpression={".into(),
            }));
            b.extend(cmd(&Command::MetadataRefresh {
                filters: Some("FILTER NoSuchTable WHERE 1 = 1".into()),
            }));
            b
        }
        // Commands before operational modes.
        6 => cmd(&Command::Subscribe {
            flags: 2,
            connection_string: "filterExpression={FILTER ActiveMeasurements WHERE True}".into(),
        }),
        // A truncated frame, then the connection closes.
        7 => vec![0, 0, 0, 200, 1, 2, 3],
        // Deeply nested filter expression.
        8 => {
            let mut b = modes;
            let deep = format!(
                "filterExpression={{FILTER ActiveMeasurements WHERE {}1{}}}",
                "(".repeat(5000),
                ")".repeat(5000)
            );
            b.extend(cmd(&Command::Subscribe {
                flags: 2,
                connection_string: deep,
            }));
            b
        }
        // Unknown command codes and malformed fixed-size payloads.
        _ => {
            let mut b = modes;
            for code in [0x0C_u8, 0x0D, 0x42, 0x99, 0xFE, 0x05] {
                b.extend_from_slice(&2u32.to_be_bytes());
                b.extend_from_slice(&[code, 0xAB]);
            }
            b
        }
    }
}

/// Sends `bytes`, reads whatever comes back for a while, returns (bytes read, closed by peer).
async fn attack(addr: std::net::SocketAddr, i: u64) -> (usize, bool) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return (0, true);
    };
    let _ = s.write_all(&garbage(i)).await;
    let mut buf = vec![0u8; 65536];
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
            Err(_) => return (total, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_100_connections_does_not_disturb_a_good_subscriber() {
    // All 100 garbage connections come from 127.0.0.1: lift the per-source limit and the
    // failure throttle (tests/tests/hostile.rs covers those), or the good subscribers would be
    // refused along with the attackers.
    let config = sttp_control::server::PublisherConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        limits: sttp_control::server::Limits {
            max_per_source: 1000,
            failure_threshold: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut tp = TestPublisher::start_with(config, 30).await;
    tp.stream(Duration::from_millis(5), 0);
    let addr = tp.publisher().local_addr();
    let mut c = SubscriberConfig::new(addr.to_string());
    c.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    c.reconnect.enabled = false;
    let mut good = Subscriber::start(c);
    // Wait for data to flow before the attack starts.
    let mut received: Vec<Expected> = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), good.next_event())
            .await
            .expect("good subscriber receives")
        {
            Some(ClientEvent::Measurements(b)) => {
                received.extend(b.iter().map(Expected::from));
                break;
            }
            Some(_) => {}
            None => panic!("good subscriber stopped"),
        }
    }
    let attackers: Vec<_> = (0..100).map(|i| tokio::spawn(attack(addr, i))).collect();
    // Keep consuming while the attack runs.
    collect_for(&mut good, Duration::from_secs(5), &mut received).await;
    let mut closed = 0;
    let mut answered = 0;
    for a in attackers {
        let (bytes, was_closed) = a.await.expect("attacker task");
        closed += usize::from(was_closed);
        answered += usize::from(bytes > 0);
    }
    let end = ((received.iter().map(|e| e.ticks).max().unwrap() - sttp_tests::T0)
        / sttp_tests::FRAME_TICKS) as u64;
    let frames = check_window(&tp, &received, end, None).expect("no gap for the good subscriber");
    assert!(
        frames > 300,
        "the stream kept flowing during the attack ({frames} frames)"
    );
    // Oversized, zero-length, bad-version, truncated frames are disconnected; the others got
    // Failed responses (bytes back).
    assert!(
        closed >= 40,
        "only {closed} garbage connections were closed"
    );
    assert!(
        answered >= 50,
        "only {answered} garbage connections got a response"
    );
    let stats = tp.publisher().stats();
    assert!(
        stats
            .protocol_closes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 30
    );
    // The publisher is still healthy: a fresh subscriber works.
    let mut c2 = SubscriberConfig::new(addr.to_string());
    c2.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    let mut fresh = Subscriber::start(c2);
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(ClientEvent::Measurements(_)) = fresh.next_event().await {
                return;
            }
        }
    })
    .await;
    assert!(ok.is_ok(), "a new subscriber is served after the attack");
    fresh.stop().await;
    good.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_loses_only_its_own_data() {
    let config = sttp_control::server::PublisherConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        subscriber_queue_frames: 16,
        ..Default::default()
    };
    let mut tp = TestPublisher::start_with(config, 400).await;
    tp.stream(Duration::from_millis(2), 0);
    let addr = tp.publisher().local_addr();
    // The stalled subscriber: negotiates and subscribes by hand, then never reads again.
    // A small receive window so the kernel buffers fill quickly.
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
    // Read until the cache arrives, confirm it, then stop reading.
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(2).any(|w| w == [0x83, 0x02]) {
        let n = stalled.read(&mut buf).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    stalled
        .write_all(&cmd(&Command::ConfirmUpdateSignalIndexCache))
        .await
        .unwrap();
    let mut c = SubscriberConfig::new(addr.to_string());
    c.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    let mut good = Subscriber::start(c);
    let mut received: Vec<Expected> = Vec::new();
    collect_for(&mut good, Duration::from_secs(8), &mut received).await;
    // Counters now, while both are connected and the good one was still reading.
    let stats = tp.publisher().subscription_stats();
    tp.stop_stream();
    let end = ((received.iter().map(|e| e.ticks).max().expect("data") - sttp_tests::T0)
        / sttp_tests::FRAME_TICKS) as u64;
    let frames = check_window(&tp, &received, end, None).expect("no gap for the good subscriber");
    assert!(frames > 500, "{frames} frames");
    assert_eq!(stats.len(), 2, "{stats:?}");
    let dropped: u64 = stats.iter().map(|(_, s)| s.dropped_queue_full).sum();
    assert!(
        dropped > 0,
        "the stalled subscriber's data was dropped and counted: {stats:?}"
    );
    let good_drops = stats
        .iter()
        .filter(|(_, s)| s.dropped_queue_full == 0)
        .count();
    assert!(
        good_drops >= 1,
        "the good subscriber lost nothing: {stats:?}"
    );
    good.stop().await;
    drop(stalled);
}
