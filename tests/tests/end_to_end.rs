//! Our publisher with our subscriber over loopback TCP: compact and TSSC, protocol versions 1–3,
//! UTF-8 and UTF-16LE, resubscribe with a changed filter, unsubscribe, reconnect after the
//! publisher restarts, and data-loss detection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use sttp_control::client::{ClientEvent, Subscriber, SubscriberConfig};
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::session::SubscriberEvent;
use sttp_tests::window::{push, receive_window};
use sttp_tests::{check_points, check_window, Expected, TestPublisher};
use tokio::time::timeout;

const SIGNALS: usize = 45;
const PERIOD: Duration = Duration::from_millis(5);

fn config(
    tp: &TestPublisher,
    tssc: bool,
    version: u8,
    encoding: StringEncoding,
    filter: &str,
) -> SubscriberConfig {
    let mut c = SubscriberConfig::new(tp.publisher().local_addr().to_string());
    c.session.tssc = tssc;
    c.session.version = version;
    c.session.encoding = encoding;
    c.session.settings = SubscriptionSettings {
        filter_expression: filter.into(),
        ..SubscriptionSettings::default()
    };
    c.reconnect.initial = Duration::from_millis(200);
    c
}

/// Waits up to `limit` for the first event `pick` maps to a value.
async fn wait_for<T>(
    sub: &mut Subscriber,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    let run = async {
        loop {
            if let Some(v) = pick(sub.next_event().await.expect("client running")) {
                return v;
            }
        }
    };
    timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{what} within {limit:?}"))
}

/// A subscriber to every signal over TSSC, version 2, UTF-8.
fn subscribe_all(tp: &TestPublisher) -> Subscriber {
    Subscriber::start(config(
        tp,
        true,
        2,
        StringEncoding::Utf8,
        "FILTER ActiveMeasurements WHERE True",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_version_and_encoding_delivers_every_point() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(PERIOD, 0);
    for tssc in [true, false] {
        for version in 1..=3u8 {
            for encoding in [StringEncoding::Utf8, StringEncoding::Utf16Le] {
                let label = format!("tssc={tssc} v{version} {encoding:?}");
                let mut sub = Subscriber::start(config(
                    &tp,
                    tssc,
                    version,
                    encoding,
                    "FILTER ActiveMeasurements WHERE True",
                ));
                let (got, end) = receive_window(&tp, &mut sub, 20).await;
                let frames =
                    check_window(&tp, &got, end, None).unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(frames >= 20, "{label}: only {frames} frames checked");
                sub.stop().await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_with_a_changed_filter_flips_the_cache_without_misdecoding() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(PERIOD, 0);
    let freq: Vec<usize> = (0..SIGNALS).filter(|p| p % 15 == 0).collect();
    let vphm: Vec<usize> = (0..SIGNALS)
        .filter(|p| matches!(p % 15, 2 | 4 | 6))
        .collect();
    let mut sub = Subscriber::start(config(
        &tp,
        true,
        2,
        StringEncoding::Utf8,
        "FILTER ActiveMeasurements WHERE SignalType = 'FREQ'",
    ));
    let (got, end) = receive_window(&tp, &mut sub, 10).await;
    check_window(&tp, &got, end, Some(&freq)).unwrap();
    sub.resubscribe(SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE SignalType = 'VPHM'".into(),
        ..SubscriptionSettings::default()
    });
    // Everything after the resubscribe: old-cache packets still in flight must decode against
    // the old slot, new ones against the new slot.
    let mut after = Vec::new();
    let mut caches = Vec::new();
    let collect = async {
        loop {
            let ev = sub.next_event().await.unwrap();
            if let ClientEvent::SubscriptionUpdated {
                cache_index,
                signals,
            } = ev
            {
                caches.push((cache_index, signals));
            }
            push(&mut after, &ev);
            let new_points = after
                .iter()
                .filter(|e| {
                    tp.signals
                        .iter()
                        .position(|g| *g == e.signal)
                        .is_some_and(|p| vphm.contains(&p))
                })
                .count();
            if new_points >= vphm.len() * 30 {
                break;
            }
        }
    };
    timeout(Duration::from_secs(20), collect)
        .await
        .expect("new subscription delivers");
    assert_eq!(
        caches,
        vec![(1, vphm.len())],
        "the second cache goes to the other slot"
    );
    let new_only: Vec<Expected> = after
        .iter()
        .copied()
        .filter(|e| {
            tp.signals
                .iter()
                .position(|g| *g == e.signal)
                .is_some_and(|p| vphm.contains(&p))
        })
        .collect();
    let last = new_only.iter().map(|e| e.ticks).max().unwrap();
    let end = ((last - sttp_tests::T0) / sttp_tests::FRAME_TICKS) as u64;
    check_window(&tp, &new_only, end, Some(&vphm)).unwrap();
    // Old points after the resubscribe are still exact (decoded against their own cache).
    let mut all = freq.clone();
    all.extend(&vphm);
    for e in &after {
        let pos = tp
            .signals
            .iter()
            .position(|g| *g == e.signal)
            .expect("known signal");
        assert!(all.contains(&pos));
        let f = ((e.ticks - sttp_tests::T0) / sttp_tests::FRAME_TICKS) as u64;
        let x = tp.expected(pos, f);
        assert_eq!(
            (x.value.to_bits(), x.flags),
            (e.value.to_bits(), e.flags),
            "point decoded against the wrong cache"
        );
    }
    sub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_the_data() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(PERIOD, 0);
    let mut sub = subscribe_all(&tp);
    receive_window(&tp, &mut sub, 5).await;
    sub.unsubscribe();
    wait_for(
        &mut sub,
        Duration::from_secs(5),
        "Unsubscribe answered",
        |e| {
            matches!(
                e,
                ClientEvent::Session(SubscriberEvent::Succeeded { command: 0x03, .. })
            )
            .then_some(())
        },
    )
    .await;
    // Let packets already in flight drain, then expect silence while the stream goes on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = timeout(Duration::from_millis(10), sub.next_event()).await {}
    let quiet = timeout(Duration::from_secs(1), async {
        loop {
            if let Some(ClientEvent::Measurements(b)) = sub.next_event().await {
                return b.len();
            }
        }
    })
    .await;
    assert!(
        quiet.is_err(),
        "measurements arrived after unsubscribe: {quiet:?}"
    );
    sub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_reconnects_and_resubscribes_after_publisher_restart() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    let addr = tp.publisher().local_addr();
    tp.stream(PERIOD, 0);
    let mut sub = subscribe_all(&tp);
    receive_window(&tp, &mut sub, 5).await;
    let next = tp.stop_stream();
    tp.shutdown().await;
    let reason = wait_for(
        &mut sub,
        Duration::from_secs(10),
        "disconnect noticed",
        |e| match e {
            ClientEvent::Disconnected { reason } => Some(reason),
            _ => None,
        },
    )
    .await;
    assert!(!reason.is_empty());
    // Restart on the same port, continuing the stream's frame numbers.
    let mut tp = TestPublisher::start_on(addr, SIGNALS).await;
    tp.stream(PERIOD, next + 100);
    let (got, end) = receive_window(&tp, &mut sub, 10).await;
    let after: Vec<Expected> = got
        .into_iter()
        .filter(|e| e.ticks >= sttp_tests::T0 + (next as i64 + 100) * sttp_tests::FRAME_TICKS)
        .collect();
    check_window(&tp, &after, end, None).unwrap();
    sub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_while_subscribed_restarts_the_connection() {
    let tp = TestPublisher::start(SIGNALS).await;
    let mut c = config(
        &tp,
        true,
        2,
        StringEncoding::Utf8,
        "FILTER ActiveMeasurements WHERE True",
    );
    c.data_loss_timeout = Some(Duration::from_millis(800));
    let mut sub = Subscriber::start(c);
    let seen = async {
        let mut order = Vec::new();
        loop {
            match sub.next_event().await.unwrap() {
                ClientEvent::SubscriptionUpdated { .. } => order.push("subscribed"),
                ClientEvent::DataLoss { .. } => order.push("data-loss"),
                ClientEvent::Connected { .. } => order.push("connected"),
                _ => {}
            }
            if order.iter().filter(|s| **s == "connected").count() == 2 {
                return order;
            }
        }
    };
    let order = timeout(Duration::from_secs(10), seen)
        .await
        .expect("data loss detected and reconnected");
    assert_eq!(order, ["connected", "subscribed", "data-loss", "connected"]);
    sub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_reach_the_application_and_user_responses_come_back() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(PERIOD, 0);
    tp.publisher()
        .on_user_command(std::sync::Arc::new(|_peer, code, data: &[u8]| {
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(data);
            Some((0xE0 + (code - 0xD0), answer))
        }));
    let mut sub = subscribe_all(&tp);
    receive_window(&tp, &mut sub, 2).await;
    sub.send_user_command(0xD5, b"ping".to_vec());
    let answer = wait_for(
        &mut sub,
        Duration::from_secs(5),
        "user response",
        |e| match e {
            ClientEvent::Session(SubscriberEvent::UserResponse {
                code,
                command,
                data,
            }) => Some((code, command, data)),
            _ => None,
        },
    )
    .await;
    assert_eq!(answer, (0xE5, 0xD5, b"echo:ping".to_vec()));
    sub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_subscription_gets_latest_values_once_per_interval() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(PERIOD, 0);
    let mut c = config(
        &tp,
        true,
        2,
        StringEncoding::Utf8,
        "FILTER ActiveMeasurements WHERE True",
    );
    c.session.settings.throttled = true;
    c.session.settings.publish_interval = 0.25;
    let mut sub = Subscriber::start(c);
    let mut batches: Vec<(tokio::time::Instant, Vec<Expected>)> = Vec::new();
    let run = async {
        while batches.len() < 6 {
            if let Some(ev) = sub.next_event().await {
                let mut got = Vec::new();
                if push(&mut got, &ev).is_some() {
                    batches.push((tokio::time::Instant::now(), got));
                }
            }
        }
    };
    timeout(Duration::from_secs(10), run)
        .await
        .expect("snapshots arrive");
    for (i, (_, b)) in batches.iter().enumerate().skip(1) {
        // One value per signal per snapshot, all exact.
        assert_eq!(b.len(), SIGNALS, "snapshot {i} has one point per signal");
        let mut sigs: Vec<_> = b.iter().map(|e| e.signal).collect();
        sigs.sort();
        sigs.dedup();
        assert_eq!(sigs.len(), SIGNALS);
        check_points(&tp, b).unwrap_or_else(|e| panic!("snapshot {i}: {e}"));
    }
    let gaps: Vec<f64> = batches
        .windows(2)
        .skip(1)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| (0.1..1.0).contains(g)),
        "snapshot spacing {gaps:?}"
    );
    sub.stop().await;
}
