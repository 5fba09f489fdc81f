//! Interoperability with the real peer, `sttpapi` 0.7.6 (peers.md): its subscriber against our
//! publisher over TSSC/TCP and compact/TCP, and our subscriber against its publisher over
//! TSSC/TCP, checking every point (signal ID, timestamp, f32 value bits, flags), not counts.
//! Every Python process is bounded in time and killed at the end.
//!
//! No port is picked here and released for a peer to bind (another test, or an outgoing
//! connection's ephemeral port, could take it in between): the Python publisher binds port 0
//! and prints the port it got, and the Python subscriber binds its UDP port 0 itself and hands
//! that bound socket to sttpapi (tests/python/sub_peer.py).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use sttp_control::client::{ClientEvent, Subscriber, SubscriberConfig};
use sttp_proto::connstr::SubscriptionSettings;
use sttp_tests::{check_window, python, repo_root, Expected, TestPublisher};
use uuid::Uuid;

const SIGNALS: usize = 45;

/// A Python peer process whose stdout lines arrive on a channel; killed when dropped.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(python: &Path, script: &str, args: &[String]) -> Self {
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/python").join(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python peer starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a line satisfying `pred`, returning it.
    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("python peer did not print {what} within {limit:?}"),
            }
        }
    }

    /// Waits for the process to exit on its own.
    fn wait_exit(&mut self, limit: Duration) -> Vec<String> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "python peer exited with {status}");
                return self.lines.try_iter().collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("python peer still running after {limit:?}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_points(path: &Path) -> Vec<Expected> {
    let text = std::fs::read_to_string(path).expect("peer output");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let bits = u32::from_str_radix(v["value_bits"].as_str().unwrap(), 16).unwrap();
            Expected {
                signal: v["signal"].as_str().unwrap().parse::<Uuid>().unwrap(),
                ticks: v["ticks"].as_i64().unwrap(),
                value: f32::from_bits(bits),
                flags: v["flags"].as_u64().unwrap() as u32,
            }
        })
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sttp-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// How the Python subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tssc,
    Compact,
    /// Compact datagrams on a UDP data channel (`Settings(udpport=N)`, wire.md §8).
    Udp,
}

async fn python_subscriber_receives_every_point(mode: Mode) {
    let Some(py) = python() else { return };
    let mut tp = TestPublisher::start(SIGNALS).await;
    tp.stream(Duration::from_millis(10), 0);
    let out = temp(match mode {
        Mode::Tssc => "sub-tssc.jsonl",
        Mode::Compact => "sub-compact.jsonl",
        Mode::Udp => "sub-udp.jsonl",
    });
    let mut args = vec![
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        tp.publisher().local_addr().port().to_string(),
        "--duration".into(),
        "6".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    match mode {
        Mode::Tssc => {}
        Mode::Compact => args.push("--compact".into()),
        // 0: the peer binds a free port and holds it for sttpapi's data channel.
        Mode::Udp => args.extend(["--compact".into(), "--udp".into(), "0".into()]),
    }
    let mut peer = Peer::spawn(&py, "sub_peer.py", &args);
    peer.wait_for("READY", Duration::from_secs(20), |l| l.trim() == "READY");
    let tail = tokio::task::spawn_blocking(move || {
        let lines = peer.wait_exit(Duration::from_secs(40));
        drop(peer);
        lines
    })
    .await
    .unwrap();
    tp.stop_stream();
    let summary: serde_json::Value = tail
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("summary line");
    let received = read_points(&out);
    let last = received
        .iter()
        .map(|e| e.ticks)
        .max()
        .expect("points received");
    let end = ((last - sttp_tests::T0) / sttp_tests::FRAME_TICKS) as u64;
    let frames =
        check_window(&tp, &received, end, None).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    assert!(frames >= 100, "only {frames} frames checked");
    assert!(
        summary["metadata_signals"].as_u64().unwrap() >= SIGNALS as u64,
        "{summary}"
    );
    assert_eq!(
        summary["unresolved"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    eprintln!(
        "python subscriber ({mode:?}): {} points over {frames} frames verified",
        received.len()
    );
    if mode == Mode::Udp {
        let port = summary["udp_port"].as_u64().unwrap_or(0);
        assert!(
            port > 0 && port <= 65_535,
            "the peer reports its data port: {summary}"
        );
        let workers = tp.publisher().worker_stats();
        let sent: u64 = workers.iter().map(|w| w.datagrams_sent).sum();
        assert!(sent > 0, "the data went over UDP");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_subscriber_receives_every_point_over_tssc() {
    python_subscriber_receives_every_point(Mode::Tssc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_subscriber_receives_every_point_over_compact() {
    python_subscriber_receives_every_point(Mode::Compact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_subscriber_receives_every_point_over_a_udp_data_channel() {
    python_subscriber_receives_every_point(Mode::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_subscriber_receives_every_point_of_the_python_publisher() {
    let Some(py) = python() else { return };
    let out = temp("pub.jsonl");
    let meta = temp("pub-metadata.xml");
    let _ = std::fs::remove_file(&meta);
    // Port 0: the publisher binds a free port itself and prints it on its first line.
    let args: Vec<String> = [
        "--port",
        "0",
        "--signals",
        "20",
        "--frames",
        "300",
        "--rate",
        "100",
        "--out",
        &out.display().to_string(),
        "--metadata",
        &meta.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let peer = Peer::spawn(&py, "pub_peer.py", &args);
    let info = peer.wait_for("signal list", Duration::from_secs(20), |l| {
        l.starts_with('{')
    });
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let port = info["port"]
        .as_u64()
        .expect("the publisher reports its port");
    assert!(port > 0 && port <= 65_535, "{info}");
    let signals: Vec<Uuid> = info["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(signals.len(), 20);
    peer.wait_for("LISTENING", Duration::from_secs(20), |l| {
        l.trim() == "LISTENING"
    });
    let mut config = SubscriberConfig::new(format!("127.0.0.1:{port}"));
    config.session.settings = SubscriptionSettings {
        filter_expression: "FILTER ActiveMeasurements WHERE True".into(),
        ..SubscriptionSettings::default()
    };
    let mut sub = Subscriber::start(config);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let waiter = std::thread::spawn(move || {
        peer.wait_for("DONE", Duration::from_secs(60), |l| l.trim() == "DONE");
        let _ = done_tx.send(());
        peer
    });
    let mut received = Vec::new();
    let mut metadata_signals = 0;
    let mut done_rx = done_rx;
    let mut done_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(70);
    while Instant::now() < deadline {
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
        tokio::select! {
            ev = sub.next_event() => match ev {
                Some(ClientEvent::Measurements(batch)) => received.extend(batch.iter().map(Expected::from)),
                Some(ClientEvent::Metadata(cache)) => metadata_signals = cache.len(),
                Some(_) => {}
                None => break,
            },
            _ = &mut done_rx, if done_at.is_none() => done_at = Some(Instant::now()),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    sub.stop().await;
    drop(waiter.join().unwrap());
    assert!(done_at.is_some(), "python publisher never finished");
    let published = read_points(&out);
    assert_eq!(published.len(), 20 * 300);
    assert_eq!(metadata_signals, 20, "metadata cache resolves every signal");
    let key = |e: &Expected| (e.signal, e.ticks, e.value.to_bits(), e.flags);
    let mut a: Vec<_> = published.iter().map(key).collect();
    let mut b: Vec<_> = received.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(
        a.len(),
        b.len(),
        "published {} points, received {}",
        a.len(),
        b.len()
    );
    assert!(a == b, "received points differ from published ones");
    assert!(received.iter().all(|e| signals.contains(&e.signal)));
}

#[test]
fn python_metadata_parser_accepts_the_demo_fleet_metadata_field_by_field() {
    let Some(py) = python() else { return };
    let fleet = sttp_control::demo::DemoFleet::new(&sttp_control::config::DemoConfig {
        signals: 600,
        ..Default::default()
    });
    let path = temp("demo-metadata.xml.gz");
    let xml = sttp_proto::metadata::xml::write_xml(fleet.metadata());
    std::fs::write(&path, sttp_proto::gzip::compress(xml.as_bytes())).unwrap();
    let out = Command::new(py)
        .arg(repo_root().join("tests/python/check_metadata.py"))
        .arg(&path)
        .arg("600")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
