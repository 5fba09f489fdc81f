//! Our publisher with our subscriber over the UDP data channel (wire.md §8): plain datagrams,
//! authenticated AES-256-GCM datagrams (our extension, wire.md §11), and key rotation — by
//! period and at the subscriber's request — without losing a point.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use sttp_control::client::{Subscriber, SubscriberConfig, UdpChannel, UdpCipherChoice};
use sttp_control::server::PublisherConfig;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_tests::window::receive_window;
use sttp_tests::{check_window, TestPublisher};

const SIGNALS: usize = 45;
const PERIOD: Duration = Duration::from_millis(5);

fn udp_config(tp: &TestPublisher, cipher: UdpCipherChoice) -> SubscriberConfig {
    let mut c = SubscriberConfig::new(tp.publisher().local_addr().to_string());
    c.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    // Port 0: the subscriber binds a free port itself and names it in its subscribe request,
    // so no other test can take it between a pick and a bind.
    c.udp = Some(UdpChannel { port: 0, cipher });
    c
}

/// Data-channel key switches the publisher's workers made, over all subscriptions.
fn key_switches(tp: &TestPublisher) -> u64 {
    tp.publisher()
        .subscription_stats()
        .iter()
        .map(|(_, s)| s.key_rotations)
        .sum()
}

async fn publisher(key_rotation: Option<Duration>) -> TestPublisher {
    TestPublisher::start_with(
        PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            key_rotation,
            ..PublisherConfig::default()
        },
        SIGNALS,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_authenticated_datagrams_deliver_every_point() {
    let mut tp = publisher(None).await;
    tp.stream(PERIOD, 0);
    for cipher in [UdpCipherChoice::None, UdpCipherChoice::AesGcm] {
        let mut sub = Subscriber::start(udp_config(&tp, cipher));
        let (got, end) = receive_window(&tp, &mut sub, 40).await;
        let frames =
            check_window(&tp, &got, end, None).unwrap_or_else(|e| panic!("{cipher:?}: {e}"));
        assert!(frames >= 40, "{cipher:?}: only {frames} frames");
        let stats = sub.stats();
        assert!(stats.datagrams_received > 0, "{cipher:?}: {stats:?}");
        // Asked for port 0: the port it bound is the one it named, and datagrams arrived on it.
        assert_ne!(stats.udp_port, 0, "{cipher:?}: {stats:?}");
        assert_eq!(stats.auth_failures, 0, "{cipher:?}: {stats:?}");
        assert_eq!(stats.replays, 0, "{cipher:?}: {stats:?}");
        match cipher {
            UdpCipherChoice::AesGcm | UdpCipherChoice::Prefer => {
                assert_eq!(stats.key_epochs_installed, 1)
            }
            UdpCipherChoice::None => assert_eq!(stats.key_epochs_installed, 0),
        }
        sub.stop().await;
    }
    // Everything went out as datagrams of at most one Ethernet MTU.
    let workers = tp.publisher().worker_stats();
    let sent: u64 = workers.iter().map(|w| w.datagrams_sent).sum();
    let bytes: u64 = workers.iter().map(|w| w.bytes_sent).sum();
    assert!(sent > 0);
    assert!(
        bytes / sent + 28 <= 1500,
        "mean datagram {} bytes",
        bytes / sent
    );
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_key_rotation_loses_nothing() {
    let mut tp = publisher(Some(Duration::from_millis(300))).await;
    tp.stream(PERIOD, 0);
    let mut sub = Subscriber::start(udp_config(&tp, UdpCipherChoice::AesGcm));
    // 600 frames at 5 ms: three seconds, about ten rotations.
    let (got, end) = receive_window(&tp, &mut sub, 600).await;
    let frames = check_window(&tp, &got, end, None).unwrap();
    assert!(frames >= 600, "only {frames} frames");
    let stats = sub.stats();
    assert!(
        stats.key_epochs_installed >= 5,
        "too few rotations: {stats:?}"
    );
    assert_eq!(stats.auth_failures, 0, "{stats:?}");
    assert_eq!(stats.replays, 0, "{stats:?}");
    let rotations = key_switches(&tp);
    assert!(rotations >= 4, "publisher switched keys {rotations} times");
    sub.stop().await;
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_cipher_keys_from_the_subscriber_installs_a_new_epoch() {
    let mut tp = publisher(None).await;
    tp.stream(PERIOD, 0);
    let mut sub = Subscriber::start(udp_config(&tp, UdpCipherChoice::AesGcm));
    let (got, end) = receive_window(&tp, &mut sub, 20).await;
    check_window(&tp, &got, end, None).unwrap();
    assert_eq!(sub.stats().key_epochs_installed, 1);
    sub.rotate_cipher_keys();
    let (got, end) = receive_window(&tp, &mut sub, 200).await;
    check_window(&tp, &got, end, None).unwrap();
    let stats = sub.stats();
    assert_eq!(stats.key_epochs_installed, 2, "{stats:?}");
    assert_eq!(stats.auth_failures, 0, "{stats:?}");
    sub.stop().await;
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_cbc_keys_rotate_under_load_without_loss() {
    // GSF-compatible keys (wire.md §8) are normally offered only on TLS connections; `Always`
    // offers them on this plain-TCP test publisher.
    let mut tp = TestPublisher::start_with(
        PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            key_rotation: Some(Duration::from_millis(300)),
            legacy_cipher_keys: sttp_control::server::LegacyCipherKeys::Always,
            ..PublisherConfig::default()
        },
        SIGNALS,
    )
    .await;
    tp.stream(PERIOD, 0);
    // A subscriber that does not ask for our extension, as a stock one would.
    let mut sub = Subscriber::start(udp_config(&tp, UdpCipherChoice::None));
    let (got, end) = receive_window(&tp, &mut sub, 600).await;
    let frames = check_window(&tp, &got, end, None).unwrap();
    assert!(frames >= 600, "only {frames} frames");
    let stats = sub.stats();
    assert!(stats.key_epochs_installed >= 5, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    let rotations = key_switches(&tp);
    assert!(rotations >= 4, "publisher switched keys {rotations} times");
    sub.stop().await;
    tp.shutdown().await;
}

/// A data channel asked for port 0 binds a free port, names it in the subscribe request, and
/// asks for the same port again when it reconnects (forced here by the data-loss timer while
/// the stream pauses), so the port an operator saw logged stays the port in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_data_port_is_kept_across_reconnects() {
    use sttp_control::client::ClientEvent;
    let mut tp = publisher(None).await;
    tp.stream(PERIOD, 0);
    let mut c = udp_config(&tp, UdpCipherChoice::AesGcm);
    c.data_loss_timeout = Some(Duration::from_millis(600));
    c.reconnect.initial = Duration::from_millis(100);
    let mut sub = Subscriber::start(c);
    let (got, end) = receive_window(&tp, &mut sub, 20).await;
    check_window(&tp, &got, end, None).unwrap();
    let port = sub.stats().udp_port;
    assert_ne!(port, 0);
    let next = tp.stop_stream();
    // Silence → DataLoss → a new connection, which binds its data channel again.
    let (mut lost, mut connected) = (false, false);
    let reconnected = tokio::time::timeout(Duration::from_secs(20), async {
        while !(lost && connected) {
            match sub.next_event().await.expect("client running") {
                ClientEvent::DataLoss { .. } => lost = true,
                ClientEvent::Connected { .. } if lost => connected = true,
                _ => {}
            }
        }
    })
    .await;
    assert!(reconnected.is_ok(), "no reconnect after the data loss");
    tp.stream(PERIOD, next);
    let (got, end) = receive_window(&tp, &mut sub, 20).await;
    check_window(&tp, &got, end, None).unwrap();
    let stats = sub.stats();
    assert_eq!(stats.udp_port, port, "same data port after the reconnect");
    assert!(
        stats.key_epochs_installed >= 2,
        "a second session: {stats:?}"
    );
    sub.stop().await;
    tp.shutdown().await;
}
