//! UDP loss injected by nftables in a private pub — router — sub namespace topology
//! (test-plan.md §3.3, T3).
//!
//! First the harness proves itself with a plain UDP sender/receiver (`udp_probe`, no STTP): the
//! router's nft counter plus the datagrams received equals the datagrams sent exactly, the
//! measured loss is within 3σ of the rule's probability, the deterministic burst rule makes
//! exactly the gaps it should, the host-loss guard (`RcvbufErrors`/`SndbufErrors`) reads zero,
//! and — the negative control — the same check fails on a run without the rule.
//!
//! Needs root and `ip netns` (skipped with a message otherwise; a failure under `CI=true`) and
//! `nft` (`apt-get install -y nftables`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use sttp_tests::netns::{loss_matches, three_sigma, Child, Role, Topology, SUB_ADDR};

/// Datagrams per run and their pace (test-plan.md §3.4: ≤ 10 k datagrams/s on this machine).
const M: u64 = 20_000;
const RATE: u64 = 10_000;
const PORT: u16 = 7000;

/// What one plain-UDP run measured.
#[derive(Debug)]
struct ProbeRun {
    sent: u64,
    received: u64,
    duplicates: u64,
    gaps: u64,
    longest_gap: u64,
    nft_dropped: u64,
    host_drops: u64,
}

fn probe() -> &'static str {
    env!("CARGO_BIN_EXE_udp_probe")
}

fn json_u64(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Sends M datagrams from the publisher namespace to the subscriber namespace through the
/// router, with `rule` (if any) as the router's drop rule.
fn run_probe(topo: &Topology, rule: Option<&str>) -> ProbeRun {
    topo.flush_rules().unwrap();
    if let Some(matcher) = rule {
        topo.add_drop("loss", &format!("udp dport {PORT} {matcher}"))
            .unwrap();
    }
    let before = topo.host_drops().unwrap();
    let mut recv_cmd = topo.command(Role::Sub, probe());
    recv_cmd
        .args(["recv", "--bind", &format!("{SUB_ADDR}:{PORT}")])
        .args([
            "--expect",
            &M.to_string(),
            "--idle-ms",
            "1500",
            "--max-secs",
            "30",
        ])
        .stdout(Stdio::piped());
    let mut receiver = Child::spawn(recv_cmd, "udp_probe recv", Duration::from_secs(40)).unwrap();
    let mut lines = BufReader::new(receiver.stdout().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut send_cmd = topo.command(Role::Pub, probe());
    send_cmd
        .args(["send", "--to", &format!("{SUB_ADDR}:{PORT}")])
        .args(["--count", &M.to_string(), "--rate", &RATE.to_string()])
        .stdout(Stdio::piped());
    let mut sender = Child::spawn(send_cmd, "udp_probe send", Duration::from_secs(30)).unwrap();
    let sent_line = BufReader::new(sender.stdout().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(sender.wait().unwrap().success());
    let received_line = lines.next().unwrap().unwrap();
    assert!(receiver.wait().unwrap().success());
    let sent: serde_json::Value = serde_json::from_str(&sent_line).unwrap();
    let got: serde_json::Value = serde_json::from_str(&received_line).unwrap();
    assert_eq!(json_u64(&sent, "send_errors"), 0, "{sent}");
    let nft_dropped = match rule {
        Some(_) => topo.drop_counts().unwrap()["loss"],
        None => 0,
    };
    let after = topo.host_drops().unwrap();
    ProbeRun {
        sent: json_u64(&sent, "sent"),
        received: json_u64(&got, "received"),
        duplicates: json_u64(&got, "duplicates"),
        gaps: json_u64(&got, "gaps"),
        longest_gap: json_u64(&got, "longest_gap"),
        nft_dropped,
        host_drops: after.buffer_drops_since(&before),
    }
}

/// Runs until a run without host drops is had (at most 3 tries): host loss invalidates a run,
/// it is never counted as injected loss (test-plan.md §2.1).
fn clean_run(topo: &Topology, rule: Option<&str>) -> ProbeRun {
    for attempt in 1..=3 {
        let run = run_probe(topo, rule);
        if run.host_drops == 0 {
            return run;
        }
        eprintln!(
            "attempt {attempt}: {} host buffer drops invalidate this run: {run:?}",
            run.host_drops
        );
    }
    panic!(
        "every run lost datagrams in host buffers (RcvbufErrors/SndbufErrors): machine too loaded"
    );
}

#[test]
fn nft_loss_harness_with_plain_udp() {
    let Some(topo) = Topology::create() else {
        return;
    };
    for k in [0u64, 50, 200] {
        let p = k as f64 / 1000.0;
        let rule = format!("numgen random mod 1000 < {k}");
        let run = clean_run(&topo, Some(&rule));
        let verdict = loss_matches(run.nft_dropped, run.sent, p);
        println!(
            "plain UDP, rule '{rule}', seed: kernel numgen (unseeded), p={p}: {run:?}; {}",
            verdict.as_ref().unwrap_or_else(|e| e)
        );
        assert_eq!(run.sent, M);
        assert_eq!(run.duplicates, 0);
        assert_eq!(
            run.received + run.nft_dropped,
            run.sent,
            "received + nft-dropped = sent exactly: {run:?}"
        );
        verdict.unwrap_or_else(|e| panic!("injected loss outside 3σ: {e}"));
        loss_matches(run.sent - run.received, run.sent, p)
            .unwrap_or_else(|e| panic!("receiver-side loss outside 3σ: {e}"));
    }

    // Deterministic bursts: packets 0..50 of every 1000 are dropped, so 20 gaps of exactly 50.
    let run = clean_run(&topo, Some("numgen inc mod 1000 < 50"));
    println!("plain UDP, burst rule: {run:?}");
    assert_eq!(run.nft_dropped, M / 20);
    assert_eq!(run.received + run.nft_dropped, run.sent);
    assert_eq!((run.gaps, run.longest_gap), (M / 1000, 50), "{run:?}");

    // Negative control: without any rule, the check that detects 20 % loss must fail, and the
    // exact accounting must still hold (nothing is lost where nothing is dropped).
    let none = clean_run(&topo, None);
    println!(
        "negative control (no rule): {none:?}; 3σ at q=0.2 is {:.5}",
        three_sigma(0.2, none.sent)
    );
    assert_eq!(none.received, none.sent);
    let control = loss_matches(none.sent - none.received, none.sent, 0.2);
    assert!(
        control.is_err(),
        "a run without the drop rule passed the 20 % loss check, so the harness cannot fail: {control:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// T3 with our publisher and subscriber (the `sttp` binary, run inside the namespaces).
// ---------------------------------------------------------------------------------------------

/// UDP port of the subscriber's data channel.
const DATA_PORT: u16 = 9600;
/// Demo source: 150 signals at 100 frames/s (15 k points/s, a few hundred datagrams/s).
const DEMO_SIGNALS: u64 = 150;
const DEMO_RATE: u64 = 100;
/// Seconds each subscriber run lasts.
const RUN_SECS: u64 = 15;

/// The `sttp` binary of this build profile: `target/<profile>/sttp` next to this test
/// executable, (re)built with the same cargo and target directory, so it is never stale. The
/// namespace tests need a separate process (`ip netns exec`), which is why this is not the
/// in-process publisher.
fn sttp_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let mut build = std::process::Command::new(env!("CARGO"));
    build
        .current_dir(sttp_tests::repo_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--quiet", "-p", "sttp-control", "--bin", "sttp"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .expect("running cargo build for the sttp binary");
    assert!(status.success(), "building the sttp binary failed");
    let bin = profile_dir.join("sttp");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// What one subscriber run over the lossy link measured.
#[derive(Debug, Default)]
struct StreamRun {
    /// Datagrams that reached the router (= sent by the publisher) and that nft dropped.
    router_seen: u64,
    /// Datagrams dropped by the end-of-run cut-off rule (not injected loss).
    cut_off: u64,
    nft_dropped: u64,
    /// Per-datagram point counts seen by the tap in the subscriber namespace (-1 = sealed).
    tap_counts: Vec<i64>,
    /// Datagrams that arrived after the subscriber closed its port (`NoPorts` delta).
    no_ports: u64,
    host_drops: u64,
    /// The subscriber's counters (`--stats-out`).
    stats: serde_json::Value,
    /// Points per frame (ticks) the subscriber printed.
    frames: std::collections::BTreeMap<i64, u64>,
}

impl StreamRun {
    fn stat(&self, key: &str) -> u64 {
        json_u64(&self.stats, key)
    }

    /// Points missing in the frames strictly between the first and last printed frame, and the
    /// number of points those frames should hold.
    /// The demo source stamps frames on a grid of 10⁷/rate ticks, so a frame lost whole
    /// still counts.
    fn point_loss(&self) -> (u64, u64) {
        let period = 10_000_000 / DEMO_RATE as i64;
        let (Some((&first, _)), Some((&last, _))) =
            (self.frames.first_key_value(), self.frames.last_key_value())
        else {
            return (0, 0);
        };
        let inner_frames = ((last - first) / period).saturating_sub(1) as u64;
        let expected = inner_frames * DEMO_SIGNALS;
        let got: u64 = self.frames.range(first + 1..last).map(|(_, n)| *n).sum();
        (expected.saturating_sub(got), expected)
    }
}

fn stream_run(
    topo: &Topology,
    sttp: &std::path::Path,
    cipher: &str,
    rule: Option<&str>,
) -> StreamRun {
    let dir = std::env::temp_dir().join(format!("sttp-udp-loss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    topo.flush_rules().unwrap();
    // Every datagram the publisher sends crosses this counter first: the ground truth of "sent".
    topo.add_counter("seen", &format!("udp dport {DATA_PORT}"))
        .unwrap();
    if let Some(matcher) = rule {
        topo.add_drop("loss", &format!("udp dport {DATA_PORT} {matcher}"))
            .unwrap();
    }
    let before = topo.host_drops().unwrap();
    let mut tap_cmd = topo.command(Role::Sub, probe());
    tap_cmd
        .args(["tap", "--port", &DATA_PORT.to_string(), "--idle-ms", "2000"])
        .args(["--max-secs", &(RUN_SECS + 30).to_string()])
        .stdout(Stdio::piped());
    let mut tap =
        Child::spawn(tap_cmd, "udp_probe tap", Duration::from_secs(RUN_SECS + 40)).unwrap();
    let mut tap_lines = BufReader::new(tap.stdout().unwrap()).lines();
    assert_eq!(tap_lines.next().unwrap().unwrap(), "ready");
    let stats_path = dir.join(format!("stats-{cipher}.json"));
    let mut sub_cmd = topo.command(Role::Sub, sttp);
    sub_cmd
        .args([
            "subscribe",
            &format!("{}:7165", sttp_tests::netns::PUB_ADDR),
        ])
        .args(["--udp", &DATA_PORT.to_string(), "--udp-cipher", cipher])
        .args([
            "--format",
            "jsonl",
            "--duration",
            &RUN_SECS.to_string(),
            "--no-reconnect",
        ])
        .arg("--stats-out")
        .arg(&stats_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut sub = Child::spawn(
        sub_cmd,
        "sttp subscribe",
        Duration::from_secs(RUN_SECS + 30),
    )
    .unwrap();
    let mut frames = std::collections::BTreeMap::new();
    let out = sub.stdout().unwrap();
    std::thread::scope(|scope| {
        // Cut the data off 3 s before the subscriber stops, so nothing is in flight or unread
        // in its socket when it exits: the datagram accounting below can then be exact.
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(RUN_SECS - 3));
            // Right after the "seen" counter, before the loss rule: every datagram is then
            // exactly one of forwarded, injected loss or cut off.
            topo.add_drop_after(0, "cutoff", &format!("udp dport {DATA_PORT}"))
                .unwrap();
        });
        for line in BufReader::new(out).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let ticks = v["ticks"].as_i64().expect("ticks");
            *frames.entry(ticks).or_insert(0) += 1;
        }
    });
    assert!(sub.wait().unwrap().success(), "sttp subscribe failed");
    let tap_line = tap_lines.next().unwrap().unwrap();
    tap.wait().unwrap();
    let tap_json: serde_json::Value = serde_json::from_str(&tap_line).unwrap();
    let counts = topo.drop_counts().unwrap();
    let after = topo.host_drops().unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    StreamRun {
        router_seen: counts["seen"],
        nft_dropped: counts.get("loss").copied().unwrap_or(0),
        cut_off: counts["cutoff"],
        tap_counts: tap_json["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_i64().unwrap())
            .collect(),
        no_ports: after.0[&Role::Sub].no_ports - before.0[&Role::Sub].no_ports,
        host_drops: after.buffer_drops_since(&before),
        stats,
        frames,
    }
}

#[test]
fn t3_udp_loss_never_exceeds_injected_loss() {
    let Some(topo) = Topology::create() else {
        return;
    };
    let sttp = sttp_binary();
    let mut serve = topo.command(Role::Pub, &sttp);
    serve
        .args([
            "serve",
            "--listen",
            &format!("{}:7165", sttp_tests::netns::PUB_ADDR),
        ])
        .args(["--demo-signals", &DEMO_SIGNALS.to_string()])
        .args(["--demo-rate", &DEMO_RATE.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _publisher = Child::spawn(serve, "sttp serve", Duration::from_secs(170)).unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let cases: [(&str, Option<&str>, f64); 5] = [
        ("none", None, 0.0),
        ("none", Some("numgen random mod 1000 < 50"), 0.05),
        ("aes-gcm", None, 0.0),
        ("aes-gcm", Some("numgen random mod 1000 < 50"), 0.05),
        ("none", Some("numgen inc mod 1000 < 50"), 0.05),
    ];
    for (cipher, rule, p) in cases {
        let run = stream_run(&topo, &sttp, cipher, rule);
        let (lost, expected) = run.point_loss();
        let m = run.router_seen - run.cut_off;
        let received = run.stat("datagrams_received");
        let delivered = run.stat("points_received");
        println!(
            "T3 cipher={cipher} rule={rule:?} p={p} seed=kernel-numgen M={m} datagrams, nft dropped {}, \
             tap {} datagrams, subscriber {received} datagrams, NoPorts {}, host drops {}; \
             points: {lost} of {expected} lost ({:.4}), bound p+3σ = {:.4}; stats {}",
            run.nft_dropped,
            run.tap_counts.len(),
            run.no_ports,
            run.host_drops,
            lost as f64 / expected.max(1) as f64,
            p + three_sigma(p, m),
            run.stats
        );
        assert_eq!(run.host_drops, 0, "host buffer drops invalidate the run");
        assert!(m > 1000, "too few datagrams ({m}) for the loss figures");
        // Publisher-sent − nft-dropped = arrived = read by the subscriber (+ the datagrams that
        // arrived after it closed its port at the end of the run).
        assert_eq!(
            run.router_seen - run.nft_dropped - run.cut_off,
            run.tap_counts.len() as u64
        );
        assert!(
            run.cut_off > 0,
            "the cut-off rule saw the stream still running"
        );
        assert_eq!(received + run.no_ports, run.tap_counts.len() as u64);
        assert_eq!(
            run.stat("auth_failures") + run.stat("replays") + run.stat("decode_errors"),
            0
        );
        if p == 0.0 {
            assert_eq!(lost, 0, "points lost without injected loss");
        } else {
            assert!(run.nft_dropped > 0);
            assert!(
                lost as f64 / expected as f64 <= p + three_sigma(p, m),
                "point loss above p + 3σ"
            );
        }
        if cipher == "none" {
            // Loss amplification exactly 1.0: the points delivered are exactly the points
            // carried by the datagrams the subscriber read.
            let carried: i64 = run.tap_counts[..received as usize].iter().sum();
            assert!(
                run.tap_counts.iter().all(|c| *c >= 0),
                "a plaintext datagram the tap cannot read"
            );
            assert_eq!(
                delivered as i64, carried,
                "points delivered ≠ points in arrived datagrams"
            );
        }
        if rule.is_some_and(|r| r.contains("inc")) {
            // Deterministic bursts of 50: every datagram after a burst decodes (no extra loss).
            let n = run.router_seen - run.cut_off;
            assert_eq!(run.nft_dropped, n / 1000 * 50 + (n % 1000).min(50));
        }
    }
}
