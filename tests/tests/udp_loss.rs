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
            "plain UDP, rule '{rule}': {run:?}; {}",
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
