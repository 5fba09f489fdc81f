//! `cargo xtask perf [--quick] [--duration SECS] [--scenario NAME]…`: the end-to-end fan-out
//! scenarios on this machine (design.md "Measuring performance").
//!
//! Every scenario runs our publisher (`sttp-perf publish`) and validating receivers
//! (`sttp-perf receive`) as separate processes, then the machine's ceiling for the same payload
//! size to the same kind of receivers (`sttp-perf receive --raw` + `sttp-perf ceiling`), and
//! reports ours as a ratio of that ceiling. Results: `<target>/perf/summary.json`,
//! `<target>/perf/summary.svg`, per-process JSON and logs in `<target>/perf/runs/`.

mod proc;
mod svg;

use crate::util::{output, repo_root, run, target_dir};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use proc::Proc;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Options of `cargo xtask perf`.
pub struct PerfOpts {
    pub quick: bool,
    /// Measurement window per run, seconds.
    pub duration: Option<u64>,
    /// Only these scenarios (by name); empty = the set for quick/full.
    pub only: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

#[derive(Clone)]
struct Scenario {
    name: &'static str,
    transport: Transport,
    gcm: bool,
    tssc: bool,
    subscribers: u32,
    signals: u32,
    /// Points/s in; None = maximum rate.
    rate: Option<f64>,
    workers: usize,
    /// Engine flush deadline in µs (None = the engine's default, 1 ms).
    flush_deadline_us: Option<u64>,
    in_quick: bool,
}

impl Scenario {
    const fn new(name: &'static str, transport: Transport, gcm: bool, k: u32) -> Self {
        Self {
            name,
            transport,
            gcm,
            tssc: matches!(transport, Transport::Tcp),
            subscribers: k,
            signals: 1000,
            rate: None,
            workers: 1,
            flush_deadline_us: None,
            in_quick: false,
        }
    }
    const fn quick(mut self) -> Self {
        self.in_quick = true;
        self
    }
    const fn rate(mut self, points_per_s: f64) -> Self {
        self.rate = Some(points_per_s);
        self
    }
    const fn workers(mut self, w: usize) -> Self {
        self.workers = w;
        self
    }
    const fn flush_deadline_us(mut self, us: u64) -> Self {
        self.flush_deadline_us = Some(us);
        self
    }
}

/// The scenarios of the issue: TCP TSSC to one subscriber (the 40 M goal), UDP plain and
/// UDP+GCM to 1/10/100 subscribers at maximum rate, and the 1 M points/s latency scenarios.
fn scenarios() -> Vec<Scenario> {
    use Transport::{Tcp, Udp};
    vec![
        Scenario::new("tcp-tssc-k1", Tcp, false, 1).quick(),
        Scenario::new("udp-plain-k1", Udp, false, 1),
        Scenario::new("udp-plain-k10", Udp, false, 10).workers(2),
        Scenario::new("udp-plain-k100", Udp, false, 100).workers(2),
        Scenario::new("udp-gcm-k1", Udp, true, 1).quick(),
        Scenario::new("udp-gcm-k10", Udp, true, 10)
            .workers(2)
            .quick(),
        Scenario::new("udp-gcm-k100", Udp, true, 100).workers(2),
        Scenario::new("latency-tcp-tssc-1M", Tcp, false, 1)
            .rate(1e6)
            .quick(),
        Scenario::new("latency-udp-gcm-1M", Udp, true, 1)
            .rate(1e6)
            .quick(),
        // Points wait up to the flush deadline for their packet to fill: the same with 200 µs.
        Scenario::new("latency-udp-gcm-1M-fd200", Udp, true, 1)
            .rate(1e6)
            .flush_deadline_us(200),
    ]
}

/// Seconds before each measurement window (connect, metadata, subscribe, steady state).
const WARMUP_SECS: f64 = 2.0;

pub fn perf(opts: &PerfOpts) -> Result<()> {
    let root = repo_root();
    let duration = opts.duration.unwrap_or(if opts.quick { 5 } else { 10 }) as f64;
    let mut selected: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| {
            if opts.only.is_empty() {
                !opts.quick || s.in_quick
            } else {
                opts.only.iter().any(|n| n == s.name)
            }
        })
        .collect();
    if selected.is_empty() {
        let names: Vec<_> = scenarios().iter().map(|s| s.name).collect();
        bail!("no scenario selected; known: {}", names.join(", "));
    }
    eprintln!("==> building sttp-perf (release)");
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "sttp-perf",
        "--bin",
        "sttp-perf",
    ]))?;
    let target = target_dir(&root);
    let bin = target.join("release").join("sttp-perf");
    if !bin.is_file() {
        bail!("the build succeeded but {} does not exist", bin.display());
    }
    let out_dir = target.join("perf");
    let runs = out_dir.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;

    let bar = ProgressBar::new(selected.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    let mut results = Vec::new();
    let mut backend = None;
    for s in selected.drain(..) {
        bar.set_message(s.name);
        let s = &s;
        let ctx = RunCtx {
            bin: &bin,
            runs: &runs,
            duration,
        };
        let result = run_scenario(&ctx, s, &bar);
        // The machine's UDP send method: what our workers opened, else the UDP ceiling's.
        if s.transport == Transport::Udp {
            let b = result["publisher"]["backend"].as_str();
            let b = b.or_else(|| result["ceiling"]["backend"].as_str());
            if let Some(b) = b {
                backend.get_or_insert_with(|| b.to_string());
            }
        }
        results.push(result);
        bar.inc(1);
    }
    bar.finish_with_message("done");

    let summary = json!({
        "machine": machine(&root, backend.as_deref()),
        "duration_secs": duration,
        "warmup_secs": WARMUP_SECS,
        "quick": opts.quick,
        "scenarios": results,
    });
    let summary_path = out_dir.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    let bars: Vec<svg::Bar> = results
        .iter()
        .map(|r| svg::Bar {
            name: r["name"].as_str().unwrap_or("?").to_string(),
            delivered: r["delivered_points_per_s"].as_f64(),
            ceiling: r["ceiling_points_per_s"].as_f64(),
        })
        .collect();
    let svg_path = out_dir.join("summary.svg");
    std::fs::write(
        &svg_path,
        svg::chart("sttp end-to-end fan-out (this machine, one run)", &bars),
    )
    .with_context(|| format!("writing {}", svg_path.display()))?;
    print_table(&results);
    println!(
        "\nwrote {} and {}",
        summary_path.display(),
        svg_path.display()
    );
    Ok(())
}

struct RunCtx<'a> {
    bin: &'a Path,
    runs: &'a Path,
    duration: f64,
}

/// What `sttp-perf publish` writes (the fields used here).
#[derive(Deserialize, Default)]
struct PubReport {
    points_published: u64,
    points_sent: u64,
    packets_sent: u64,
    bytes_sent: u64,
    dropped_queue_full: u64,
    #[serde(default)]
    datagrams_sent: u64,
    #[serde(default)]
    send_would_block: u64,
    #[serde(default)]
    backend: Option<String>,
}

/// What `sttp-perf receive` writes (the fields used here).
#[derive(Deserialize, Default)]
struct RecvReport {
    window_secs: f64,
    points: u64,
    datagrams: u64,
    bytes: u64,
    bad_values: u64,
    out_of_order: u64,
    unknown_signals: u64,
    points_total: u64,
    subscribers_with_data: u32,
    disconnects: u64,
    latency: LatencyReport,
    publisher_cpu_percent: Option<f64>,
    receiver_cpu_percent: Option<f64>,
    host_rcvbuf_errors: Option<u64>,
}

#[derive(Deserialize, Default)]
struct LatencyReport {
    samples: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

/// What `sttp-perf ceiling` writes.
#[derive(Deserialize, Default)]
struct CeilReport {
    backend: String,
    gso: bool,
    size: usize,
    sent: u64,
    cpu_percent: f64,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Runs one scenario; failures become a `status` in its entry, never fake numbers.
fn run_scenario(ctx: &RunCtx<'_>, s: &Scenario, bar: &ProgressBar) -> Value {
    let mut entry = json!({
        "name": s.name,
        "transport": match s.transport { Transport::Tcp => "tcp", Transport::Udp => "udp" },
        "encryption": if s.gcm { "aes-gcm" } else { "none" },
        "compression": if s.tssc { "tssc" } else { "compact" },
        "subscribers": s.subscribers,
        "signals": s.signals,
        "rate_in_points_per_s": s.rate,
        "workers": s.workers,
        "flush_deadline_us": s.flush_deadline_us,
        "delivered_points_per_s": null,
        "ceiling_points_per_s": null,
        "ratio": null,
        "bytes_per_point": null,
        "p50_latency_us": null,
        "p99_latency_us": null,
        "p999_latency_us": null,
        "cpu_percent": null,
    });
    let ours = match run_ours(ctx, s) {
        Ok(v) => v,
        Err(e) => {
            bar.println(format!("{}: {e:#}", s.name));
            entry["status"] = json!(format!("unavailable: {e:#}"));
            return entry;
        }
    };
    let (publ, recv) = ours;
    let window = recv.window_secs.max(1e-9);
    let delivered = recv.points as f64 / window;
    // Payload bytes per point: what the subscribers received where they count it (UDP), else
    // what the publisher's sinks accepted.
    let bytes_per_point = if recv.bytes > 0 && recv.points > 0 {
        recv.bytes as f64 / recv.points as f64
    } else if publ.points_sent > 0 {
        publ.bytes_sent as f64 / publ.points_sent as f64
    } else {
        0.0
    };
    let packets = if publ.datagrams_sent > 0 {
        publ.datagrams_sent
    } else {
        publ.packets_sent
    };
    let packet_size = recv
        .bytes
        .checked_div(recv.datagrams)
        .or_else(|| publ.bytes_sent.checked_div(packets))
        .unwrap_or(0);
    let valid = recv.bad_values == 0
        && recv.out_of_order == 0
        && recv.unknown_signals == 0
        && recv.subscribers_with_data == s.subscribers
        && recv.disconnects == 0
        && recv.points > 0;
    entry["delivered_points_per_s"] = json!(delivered);
    entry["bytes_per_point"] = json!(bytes_per_point);
    entry["packet_bytes"] = json!(packet_size);
    entry["p50_latency_us"] = json!(recv.latency.p50_us);
    entry["p99_latency_us"] = json!(recv.latency.p99_us);
    entry["p999_latency_us"] = json!(recv.latency.p999_us);
    entry["max_latency_us"] = json!(recv.latency.max_us);
    entry["latency_samples"] = json!(recv.latency.samples);
    entry["cpu_percent"] = json!(recv.publisher_cpu_percent);
    entry["receiver_cpu_percent"] = json!(recv.receiver_cpu_percent);
    entry["validation"] = json!({
        "points_checked": recv.points_total,
        "bad_values": recv.bad_values,
        "out_of_order": recv.out_of_order,
        "unknown_signals": recv.unknown_signals,
        "subscribers_with_data": recv.subscribers_with_data,
        "disconnects": recv.disconnects,
    });
    entry["publisher"] = json!({
        "points_published": publ.points_published,
        "points_sent": publ.points_sent,
        "packets_sent": packets,
        "bytes_sent": publ.bytes_sent,
        "dropped_queue_full": publ.dropped_queue_full,
        "send_would_block": publ.send_would_block,
        "backend": publ.backend,
    });
    entry["host_rcvbuf_errors"] = json!(recv.host_rcvbuf_errors);
    let mut status = if valid {
        "ok".to_string()
    } else {
        "invalid: validation failed (see validation)".to_string()
    };
    if let Some(n) = recv.host_rcvbuf_errors.filter(|n| *n > 0) {
        // At maximum rate the publisher outruns the receivers; only validated points count.
        status.push_str(&format!(
            " (host dropped {n} datagrams: receivers saturated)"
        ));
    }
    // A paced scenario's ceiling would say nothing about its latency; skip it.
    if s.rate.is_none() && packet_size > 0 && bytes_per_point > 0.0 {
        match run_ceiling(ctx, s, packet_size as usize) {
            Ok((ceil, raw)) => {
                let ceiling = raw.bytes as f64 / raw.window_secs.max(1e-9) / bytes_per_point;
                entry["ceiling_points_per_s"] = json!(ceiling);
                entry["ratio"] = json!(if ceiling > 0.0 {
                    delivered / ceiling
                } else {
                    0.0
                });
                entry["ceiling"] = json!({
                    "backend": ceil.backend,
                    "gso": ceil.gso,
                    "payload_bytes": ceil.size,
                    "sent": ceil.sent,
                    "received": raw.datagrams,
                    "received_bytes_per_s": raw.bytes as f64 / raw.window_secs.max(1e-9),
                    "sender_cpu_percent": ceil.cpu_percent,
                    "host_rcvbuf_errors": raw.host_rcvbuf_errors,
                });
            }
            Err(e) => {
                bar.println(format!("{} ceiling: {e:#}", s.name));
                entry["ceiling_status"] = json!(format!("unavailable: {e:#}"));
            }
        }
    }
    entry["status"] = json!(status);
    entry
}

/// Our publisher and validating receivers.
fn run_ours(ctx: &RunCtx<'_>, s: &Scenario) -> Result<(PubReport, RecvReport)> {
    let pub_json = ctx.runs.join(format!("{}.publisher.json", s.name));
    let recv_json = ctx.runs.join(format!("{}.receiver.json", s.name));
    for p in [&pub_json, &recv_json] {
        let _ = std::fs::remove_file(p);
    }
    let rate = s.rate.map_or("max".to_string(), |r| format!("{r}"));
    let mut publish = Command::new(ctx.bin);
    publish.arg("publish");
    if let Some(us) = s.flush_deadline_us {
        publish.args(["--flush-deadline-us", &us.to_string()]);
    }
    let mut publisher = Proc::start(
        "publisher",
        publish
            .args(["--signals", &s.signals.to_string()])
            .args(["--rate", &rate])
            .args(["--workers", &s.workers.to_string()])
            .args(["--listen", "127.0.0.1:0"])
            .arg("--stop-on-stdin-eof")
            .args([
                "--max-seconds",
                &((ctx.duration + WARMUP_SECS) as u64 + 60).to_string(),
            ])
            .arg("--out")
            .arg(&pub_json),
        &ctx.runs.join(format!("{}.publisher.log", s.name)),
    )?;
    let addr = publisher.ready(Duration::from_secs(30))?;
    let mut receiver = Proc::start(
        "receiver",
        Command::new(ctx.bin)
            .arg("receive")
            .args(["--publisher", &addr])
            .args(["--subscribers", &s.subscribers.to_string()])
            .args(["--transport", transport_arg(s.transport)])
            .args(["--cipher", if s.gcm { "aes-gcm" } else { "none" }])
            .args(["--compression", if s.tssc { "tssc" } else { "compact" }])
            .args(["--signals", &s.signals.to_string()])
            // Each subscriber binds a free UDP port itself and names it in its subscribe.
            .args(["--port", "0"])
            .args(["--warmup", &WARMUP_SECS.to_string()])
            .args(["--duration", &ctx.duration.to_string()])
            .args(["--publisher-pid", &publisher.pid().to_string()])
            .arg("--out")
            .arg(&recv_json),
        &ctx.runs.join(format!("{}.receiver.log", s.name)),
    )?;
    receiver.ready(Duration::from_secs(30))?;
    let limit = Duration::from_secs_f64(WARMUP_SECS + ctx.duration + 30.0);
    let received = receiver.finish(limit);
    publisher.close_stdin();
    let published = publisher.finish(Duration::from_secs(20));
    received?;
    published?;
    Ok((read_json(&pub_json)?, read_json(&recv_json)?))
}

/// Raw receivers and the ceiling sender with `size`-byte payloads.
fn run_ceiling(ctx: &RunCtx<'_>, s: &Scenario, size: usize) -> Result<(CeilReport, RecvReport)> {
    let raw_json = ctx.runs.join(format!("{}.raw.json", s.name));
    let ceil_json = ctx.runs.join(format!("{}.ceiling.json", s.name));
    for p in [&raw_json, &ceil_json] {
        let _ = std::fs::remove_file(p);
    }
    let warmup = 1.0;
    let mut raw = Proc::start(
        "raw receiver",
        Command::new(ctx.bin)
            .args(["receive", "--raw"])
            .args(["--subscribers", &s.subscribers.to_string()])
            .args(["--transport", transport_arg(s.transport)])
            // The raw receivers bind free ports and print them on their `ready` line.
            .args(["--port", "0"])
            .args(["--warmup", &warmup.to_string()])
            .args(["--duration", &ctx.duration.to_string()])
            .arg("--out")
            .arg(&raw_json),
        &ctx.runs.join(format!("{}.raw.log", s.name)),
    )?;
    let dests = raw.ready(Duration::from_secs(10))?;
    anyhow::ensure!(
        !dests.is_empty(),
        "the raw receiver did not report its addresses"
    );
    let mut sender = Proc::start(
        "ceiling sender",
        Command::new(ctx.bin)
            .arg("ceiling")
            .args(["--transport", transport_arg(s.transport)])
            .args(["--dest", &dests])
            .args(["--subscribers", &s.subscribers.to_string()])
            .args(["--size", &size.to_string()])
            .args(["--seconds", &(warmup + ctx.duration + 0.5).to_string()])
            .arg("--out")
            .arg(&ceil_json),
        &ctx.runs.join(format!("{}.ceiling.log", s.name)),
    )?;
    let limit = Duration::from_secs_f64(warmup + ctx.duration + 20.0);
    let sent = sender.finish(limit);
    let received = raw.finish(Duration::from_secs(15));
    sent?;
    received?;
    Ok((read_json(&ceil_json)?, read_json(&raw_json)?))
}

fn transport_arg(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    }
}

/// Where and when the numbers were measured.
fn machine(root: &Path, backend: Option<&str>) -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .ok()
    };
    let cpu_model = read("/proc/cpuinfo").and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
    });
    let git = |args: &[&str]| output(Command::new("git").current_dir(root).args(args));
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": cpu_model,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "date": output(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
        "git_rev": git(&["rev-parse", "--short", "HEAD"]),
        "git_dirty": dirty,
        "backend": backend,
    })
}

fn fmt_m(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{:.2}", x / 1e6))
}

fn fmt_f(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn print_table(results: &[Value]) {
    println!(
        "\n{:<26} {:>9} {:>9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>6}  status",
        "scenario", "M pts/s", "ceil M/s", "ratio", "B/pt", "p50 µs", "p99 µs", "p999 µs", "CPU%"
    );
    for r in results {
        println!(
            "{:<26} {:>9} {:>9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>6}  {}",
            r["name"].as_str().unwrap_or("?"),
            fmt_m(&r["delivered_points_per_s"]),
            fmt_m(&r["ceiling_points_per_s"]),
            fmt_f(&r["ratio"], 2),
            fmt_f(&r["bytes_per_point"], 2),
            fmt_f(&r["p50_latency_us"], 0),
            fmt_f(&r["p99_latency_us"], 0),
            fmt_f(&r["p999_latency_us"], 0),
            fmt_f(&r["cpu_percent"], 0),
            r["status"].as_str().unwrap_or("?"),
        );
    }
}
