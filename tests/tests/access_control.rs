//! Subscriber access control end to end: a publisher with a policy file keyed on source
//! addresses (127.0.0.1, 127.0.0.2 — both loopback), two subscribers that each receive exactly
//! their allowed points (metadata, cache and data), an unknown peer refused without a byte, and a
//! rewritten policy file taking effect for a new subscription within about 2 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sttp_control::access::AccessControl;
use sttp_control::config::DemoConfig;
use sttp_control::demo::DemoFleet;
use sttp_control::server::PublisherConfig;
use sttp_proto::catalog::Catalog;
use sttp_proto::framing::FrameDecoder;
use sttp_proto::session::subscriber::SubscriberOutput;
use sttp_proto::session::{SubscriberEvent, SubscriberSession, SubscriberSessionConfig};
use sttp_tests::TestPublisher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use uuid::Uuid;

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    metadata_signals: BTreeSet<Uuid>,
    metadata_devices: BTreeSet<String>,
    received: BTreeSet<Uuid>,
    cache_signals: Option<usize>,
    subscribe_reply: Option<String>,
}

/// Connects from `local_ip`, fetches metadata, subscribes to everything and collects for `dur`.
async fn subscribe_from(local_ip: &str, publisher: SocketAddr, dur: Duration) -> Seen {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{local_ip}:0").parse().unwrap())
        .unwrap();
    let stream = socket.connect(publisher).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let mut config = SubscriberSessionConfig::default();
    config.settings.filter_expression = "FILTER ActiveMeasurements WHERE True".into();
    let mut session = SubscriberSession::new(config);
    session.start();
    let mut framer = FrameDecoder::new(64 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Seen::default();
    let end = tokio::time::Instant::now() + dur;
    loop {
        while let Some(out) = session.poll_output() {
            match out {
                SubscriberOutput::Send(b) => wr.write_all(&b).await.unwrap(),
                SubscriberOutput::Event(e) => match e {
                    SubscriberEvent::Metadata(set) => {
                        let md = set.table("MeasurementDetail").unwrap();
                        for r in 0..md.len() {
                            seen.metadata_signals
                                .insert(md.value_by_name(r, "SignalID").as_guid().unwrap());
                        }
                        let dd = set.table("DeviceDetail").unwrap();
                        for r in 0..dd.len() {
                            seen.metadata_devices.insert(
                                dd.value_by_name(r, "Acronym").as_str().unwrap().to_owned(),
                            );
                        }
                    }
                    SubscriberEvent::SubscriptionUpdated { signals, .. } => {
                        seen.cache_signals = Some(signals)
                    }
                    SubscriberEvent::Succeeded {
                        command: 0x02,
                        message,
                    } => seen.subscribe_reply = Some(message),
                    SubscriberEvent::Failed { command, message } => {
                        panic!("command 0x{command:02X} failed: {message}")
                    }
                    SubscriberEvent::Measurements(ms) => {
                        seen.received.extend(ms.iter().map(|m| m.signal_id))
                    }
                    _ => {}
                },
            }
        }
        let n = tokio::select! {
            r = rd.read(&mut buf) => r.unwrap(),
            _ = tokio::time::sleep_until(end) => break,
        };
        assert!(n > 0, "publisher closed the connection of {local_ip}");
        framer.push(&buf[..n]);
        while let Some(frame) = framer.next_frame().unwrap() {
            session.handle_frame(&frame);
        }
    }
    seen
}

/// Signals of `catalog` whose MeasurementDetail row satisfies `pred(device, signal type)`.
fn signals_where(catalog: &Catalog, pred: impl Fn(&str, &str) -> bool) -> BTreeSet<Uuid> {
    let md = catalog.metadata().table("MeasurementDetail").unwrap();
    (0..md.len())
        .filter(|&r| {
            pred(
                md.value_by_name(r, "DeviceAcronym").as_str().unwrap(),
                md.value_by_name(r, "SignalAcronym").as_str().unwrap(),
            )
        })
        .map(|r| md.value_by_name(r, "SignalID").as_guid().unwrap())
        .collect()
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn policy(a_filter: &str, b_denied: Uuid) -> String {
    format!(
        r#"
[groups.pmu2]
filter = "Device = 'PMU002'"

[[identity]]
name = "a"
addresses = ["127.0.0.1"]
allow_filters = ["{a_filter}"]

[[identity]]
name = "b"
addresses = ["127.0.0.2/32"]
allow_groups = ["pmu2"]
deny_points = ["{b_denied}"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_receives_exactly_its_points_and_reloads_apply() {
    let file = TempFile(std::env::temp_dir().join(format!(
        "sttp-access-{}-{}.toml",
        std::process::id(),
        Uuid::new_v4()
    )));
    // 30 demo signals: PMU001 and PMU002, 15 each. The denied point is PMU002's frequency.
    let fleet = DemoFleet::new(&DemoConfig {
        signals: 30,
        ..DemoConfig::default()
    });
    let demo = Catalog::new(Uuid::nil(), fleet.metadata().clone());
    let b_denied = *signals_where(&demo, |d, t| d == "PMU002" && t == "FREQ")
        .iter()
        .next()
        .unwrap();
    std::fs::write(&file.0, policy("SignalType = 'FREQ'", b_denied)).unwrap();
    let access = AccessControl::load(&file.0).unwrap();
    let mut tp = TestPublisher::start_with(
        PublisherConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            access: Some(access.clone()),
            ..PublisherConfig::default()
        },
        30,
    )
    .await;
    tp.stream(Duration::from_millis(10), 0);
    let addr = tp.publisher().local_addr();
    let catalog = tp.publisher().catalog();
    let all: BTreeSet<Uuid> = catalog.signals().iter().map(|s| s.signal_id).collect();
    assert_eq!(all.len(), 30);
    let want_a = signals_where(&catalog, |_, t| t == "FREQ");
    let mut want_b = signals_where(&catalog, |d, _| d == "PMU002");
    want_b.remove(&b_denied);
    assert_eq!((want_a.len(), want_b.len()), (2, 14));

    let (a, b) = tokio::join!(
        subscribe_from("127.0.0.1", addr, Duration::from_millis(1500)),
        subscribe_from("127.0.0.2", addr, Duration::from_millis(1500)),
    );
    assert_eq!(a.metadata_signals, want_a, "A's metadata");
    assert_eq!(a.received, want_a, "A's data");
    assert_eq!(a.cache_signals, Some(2));
    assert_eq!(
        a.metadata_devices,
        ["PMU001", "PMU002"].map(String::from).into()
    );
    assert!(
        a.subscribe_reply
            .as_deref()
            .unwrap()
            .ends_with(" 28 requested points were refused by access control."),
        "{:?}",
        a.subscribe_reply
    );
    assert_eq!(b.metadata_signals, want_b, "B's metadata");
    assert_eq!(b.received, want_b, "B's data");
    assert_eq!(b.cache_signals, Some(14));
    assert_eq!(b.metadata_devices, ["PMU002"].map(String::from).into());
    assert!(b
        .subscribe_reply
        .as_deref()
        .unwrap()
        .ends_with(" 16 requested points were refused by access control."));

    // An unknown peer: the connection closes without one byte, whatever it sends.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let mut modes = Vec::new();
    sttp_proto::command::Command::DefineOperationalModes(
        SubscriberSessionConfig::default().operational_modes(),
    )
    .encode(sttp_proto::encoding::StringEncoding::Utf8, &mut modes);
    let _ = s.write_all(&modes).await;
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut byte))
        .await
        .expect("unknown peer's connection closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "an unknown peer received STTP bytes");

    // Rewrite the policy: A now gets PMU001. The watcher polls every second.
    let (generation, _) = access.policy();
    let started = Instant::now();
    std::fs::write(&file.0, policy("Device = 'PMU001'", b_denied)).unwrap();
    while access.policy().0 == generation {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "policy not reloaded within 2.5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reloaded_after = started.elapsed();
    let a2 = subscribe_from("127.0.0.1", addr, Duration::from_millis(1500)).await;
    let want_a2 = signals_where(&catalog, |d, _| d == "PMU001");
    assert_eq!(a2.metadata_signals, want_a2, "A's metadata after reload");
    assert_eq!(a2.received, want_a2, "A's data after reload");
    eprintln!("policy reloaded {reloaded_after:?} after the file was rewritten");

    // A broken file keeps the policy in force.
    std::fs::write(&file.0, "[[identity]]\nname = 3\n").unwrap();
    let err = access.reload().unwrap_err();
    assert!(err.contains("line 2, column 8"), "{err}");
    let a3 = subscribe_from("127.0.0.1", addr, Duration::from_millis(800)).await;
    assert_eq!(a3.metadata_signals, want_a2);
    tp.shutdown().await;
}
