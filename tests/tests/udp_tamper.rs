//! T10 — tamper, replay and injection on the UDP data channel (test-plan.md §2.2), on loopback
//! through the seeded userspace proxy (`sttp_tests::udp_proxy`).
//!
//! Topology: subscriber → `TcpRelay` (rewrites `localport=N` to the proxy's port) → publisher;
//! the publisher's datagrams go to the proxy, which forwards them to the subscriber's port N (a
//! port the subscriber bound itself, port 0, which the relay reads from its subscribe request) and
//! adds bit-flipped, truncated, garbage and header-spoofed copies and immediate duplicates; then
//! a flood of 10 000 crafted datagrams at 5 000/s goes straight to the subscriber's port. The
//! test then replays captured datagrams immediately, ≥ 5 s after their capture, after a key
//! rotation, and to a second subscriber's port.
//!
//! Pass (AES-256-GCM, our extension): every altered or replayed datagram is refused and counted
//! (`auth_failures + replays` equals exactly what the proxy added), every delivered point equals
//! what the source published, no point arrives twice, no frame is missing (zero extra gaps), and
//! the session stays up. Negative control: the same run with `UdpCipherChoice::None` must deliver
//! duplicates or altered values, so this test could fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_control::client::{
    ClientStats, Subscriber, SubscriberConfig, UdpChannel, UdpCipherChoice,
};
use sttp_proto::connstr::SubscriptionSettings;
use sttp_tests::udp_proxy::{FaultPlan, TcpRelay, UdpProxy};
use sttp_tests::{check_window, collect_for, Expected, TestPublisher, FRAME_TICKS, T0};

const SIGNALS: usize = 20;
const SEED: u64 = 0x5177_2664;
/// Crafted datagrams sent in the flood phase (at 5 000/s).
const FLOOD: u64 = 10_000;

/// A subscriber whose data channel binds a free port itself (port 0) and names it.
fn subscriber(addr: SocketAddr, cipher: UdpCipherChoice) -> Subscriber {
    let mut c = SubscriberConfig::new(addr.to_string());
    c.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    c.reconnect.enabled = false;
    c.udp = Some(UdpChannel { port: 0, cipher });
    Subscriber::start(c)
}

/// Collects until `pred` holds on the subscriber's counters (or `limit` passes).
async fn collect_until(
    sub: &mut Subscriber,
    out: &mut Vec<Expected>,
    limit: Duration,
    pred: impl Fn(&ClientStats) -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred(&sub.stats()) {
            return true;
        }
        collect_for(sub, Duration::from_millis(100), out).await;
    }
    pred(&sub.stats())
}

/// What one run observed.
struct Outcome {
    received: Vec<Expected>,
    stats: ClientStats,
    expected_rejects: u64,
    proxy_forwarded: u64,
    other_stats: ClientStats,
    injected_to_other: u64,
    check: Result<u64, String>,
}

async fn run(cipher: UdpCipherChoice) -> Outcome {
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(Duration::from_millis(10), 0);
    let plan = FaultPlan {
        capture: true,
        capture_limit: 10_000,
        ..FaultPlan::default()
    };
    let proxy = Arc::new(
        UdpProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            // Not known yet: the relay points the proxy at the port the subscriber names.
            SocketAddr::from(([127, 0, 0, 1], 0)),
            plan,
            SEED,
        )
        .unwrap(),
    );
    let relay =
        TcpRelay::redirect_data_channel(tp.publisher().local_addr(), proxy.clone()).unwrap();
    let mut sub = subscriber(relay.local_addr(), cipher);
    // A second subscriber, directly connected, whose port receives injected datagrams.
    let mut other = subscriber(tp.publisher().local_addr(), cipher);
    let mut received = Vec::new();
    let mut other_received = Vec::new();

    // Clean traffic first (captured for the replays).
    assert!(
        collect_until(&mut sub, &mut received, Duration::from_secs(10), |s| s
            .datagrams_received
            > 200)
        .await,
        "no UDP data through the proxy: {:?} {:?}",
        sub.stats(),
        proxy.stats()
    );
    collect_for(&mut other, Duration::from_millis(500), &mut other_received).await;
    // The ports the subscribers bound themselves: what the relay saw in the subscribe request
    // and where the proxy forwards.
    let port = sub.stats().udp_port;
    assert_ne!(port, 0);
    assert_eq!(
        relay.data_ports(),
        vec![port],
        "one subscribe through the relay"
    );
    assert_eq!(proxy.target(), SocketAddr::from(([127, 0, 0, 1], port)));
    let other_port = other.stats().udp_port;
    assert!(other_port != 0 && other_port != port, "{other_port} {port}");
    let clean = proxy.captured();

    // Tampering for 3 s: every kind of altered copy, and duplicates.
    proxy.set_plan(FaultPlan {
        bit_flip: 0.25,
        truncate: 0.25,
        garbage: 0.25,
        spoof: 0.25,
        duplicate: 0.25,
        ..FaultPlan::default()
    });
    collect_for(&mut sub, Duration::from_secs(3), &mut received).await;
    proxy.set_plan(FaultPlan::default());

    // A flood of crafted datagrams at 5 000/s straight to the subscriber's port, from a thread,
    // while the subscriber keeps receiving the stream.
    let flooder = {
        let (proxy, base) = (proxy.clone(), clean.clone());
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        tokio::task::spawn_blocking(move || proxy.flood(&base, FLOOD, 5_000, to, SEED ^ 1))
    };
    while !flooder.is_finished() {
        collect_for(&mut sub, Duration::from_millis(100), &mut received).await;
    }
    let flooded = flooder.await.unwrap();
    assert_eq!(flooded, FLOOD, "every crafted datagram was sent");
    collect_for(&mut sub, Duration::from_secs(1), &mut received).await;

    // Immediate replays of recent datagrams, then the first captured ones (≥ 5 s old by now,
    // given the 3 s of tampering and the time to capture them).
    proxy.replay(
        &clean[clean.len().saturating_sub(50)..],
        SocketAddr::from(([127, 0, 0, 1], port)),
    );
    collect_for(&mut sub, Duration::from_secs(2), &mut received).await;
    proxy.replay(
        &clean[..clean.len().min(200)],
        SocketAddr::from(([127, 0, 0, 1], port)),
    );

    // A key rotation, then replays from before it.
    let epochs = sub.stats().key_epochs_installed;
    sub.rotate_cipher_keys();
    if cipher == UdpCipherChoice::AesGcm {
        assert!(
            collect_until(&mut sub, &mut received, Duration::from_secs(10), |s| s
                .key_epochs_installed
                > epochs)
            .await,
            "the rotated key was never installed: {:?}",
            sub.stats()
        );
    }
    proxy.set_plan(plan);
    collect_for(&mut sub, Duration::from_secs(1), &mut received).await;
    proxy.replay(&clean, SocketAddr::from(([127, 0, 0, 1], port)));

    // Injection into the other subscriber's port: the newest datagrams sealed for the first
    // subscriber (it subscribed earlier, so their sequence numbers are ahead of the other's
    // window, and only authentication can refuse them).
    let newest = proxy.captured();
    let newest = &newest[newest.len().saturating_sub(100)..];
    let injected_to_other = proxy.replay(newest, SocketAddr::from(([127, 0, 0, 1], other_port)));
    collect_for(&mut other, Duration::from_millis(500), &mut other_received).await;
    collect_for(&mut sub, Duration::from_secs(1), &mut received).await;

    let p = proxy.stats();
    let stats = sub.stats();
    let other_stats = other.stats();
    sub.stop().await;
    other.stop().await;
    tp.stop_stream();
    let end = received
        .iter()
        .map(|e| ((e.ticks - T0) / FRAME_TICKS) as u64)
        .max()
        .unwrap_or(0);
    let check = check_window(&tp, &received, end, None);
    let other_check = sttp_tests::check_points(&tp, &other_received).and_then(|()| {
        let mut seen = std::collections::HashSet::new();
        match other_received
            .iter()
            .find(|e| !seen.insert((e.signal, e.ticks)))
        {
            Some(e) => Err(format!("point delivered twice: {e:?}")),
            None => Ok(()),
        }
    });
    println!(
        "T10 {cipher:?}: seed {SEED:#x}; proxy {p:?}; subscriber {stats:?}; other subscriber {other_stats:?}; \
         window check: {check:?}; other's points: {other_check:?}"
    );
    if cipher == UdpCipherChoice::AesGcm {
        other_check.expect("the other subscriber delivered only genuine points");
    }
    drop(relay);
    tp.shutdown().await;
    Outcome {
        received,
        stats,
        expected_rejects: p.altered() + p.duplicated + p.replayed - injected_to_other,
        proxy_forwarded: p.forwarded,
        other_stats,
        injected_to_other,
        check,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_and_replayed_datagrams_are_refused_and_counted() {
    let o = run(UdpCipherChoice::AesGcm).await;
    let s = o.stats;
    assert!(!o.received.is_empty());
    let frames = o
        .check
        .unwrap_or_else(|e| panic!("a bad, duplicated or missing point was delivered: {e}"));
    assert!(frames > 500, "{frames} frames");
    assert!(
        o.expected_rejects > 500,
        "too few attacks to mean anything: {}",
        o.expected_rejects
    );
    assert_eq!(
        s.auth_failures + s.replays,
        o.expected_rejects,
        "every altered or replayed datagram refused and counted: {s:?}"
    );
    assert!(s.replays > 0 && s.auth_failures > 0, "{s:?}");
    assert_eq!(s.decode_errors, 0, "{s:?}");
    assert_eq!(
        s.datagrams_received,
        o.proxy_forwarded + o.expected_rejects,
        "every datagram the proxy sent was read (no host loss): {s:?}"
    );
    assert!(o.injected_to_other > 0);
    assert_eq!(
        o.other_stats.auth_failures + o.other_stats.replays,
        o.injected_to_other,
        "the other subscriber refused every datagram sealed for the first: {:?}",
        o.other_stats
    );
}

/// Negative control: without authentication the same attack gets through (duplicates or
/// altered values are delivered), so the test above is able to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authentication_the_same_attack_gets_through() {
    let o = run(UdpCipherChoice::None).await;
    assert!(!o.received.is_empty());
    assert!(
        o.check.is_err(),
        "plaintext datagrams survived duplicates, replays and bit flips unharmed: {:?}",
        o.stats
    );
    assert_eq!(o.stats.auth_failures + o.stats.replays, 0, "{:?}", o.stats);
}
