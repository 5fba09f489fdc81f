//! The `sttp` binary as an operator uses it: `sttp serve` with the demo fleet, `sttp subscribe`
//! in csv, jsonl and status formats, a config file, and clear failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sttp");

/// A running `sttp serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by `Server` from here on, so a failure below still kills and reaps it.
        let mut server = Self {
            child,
            addr: String::new(),
        };
        let stderr = server.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(20);
        while server.addr.is_empty() {
            let line = rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .expect("serve announces its address");
            if let Some(rest) = line.strip_prefix("sttp publisher on ") {
                server.addr = rest.split_whitespace().next().unwrap().to_string();
            }
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP socket bound to a free loopback port that does not listen: connecting to it is refused,
/// and the port stays taken (no SO_REUSEADDR) until the socket is dropped.
fn bound_not_listening() -> (socket2::Socket, std::net::SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

fn subscribe(addr: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("subscribe")
        .arg(addr)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < until,
            "sttp subscribe did not stop by itself"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn csv_rows_have_the_documented_columns_and_consistent_values() {
    let server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--demo-signals",
        "30",
        "--demo-rate",
        "60",
    ]);
    let out = subscribe(&server.addr, &["--format", "csv", "--count", "300"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("signal_id,point_tag,time,ticks,value,flags")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 300, "exactly --count rows");
    let mut tags = std::collections::HashSet::new();
    for r in &rows {
        assert_eq!(r.len(), 6, "{r:?}");
        uuid::Uuid::parse_str(r[0]).expect("signal id is a GUID");
        assert!(r[1].starts_with("PMU"), "point tag from metadata: {r:?}");
        tags.insert(r[1]);
        let ticks: i64 = r[3].parse().unwrap();
        assert_eq!(
            r[2],
            sttp_wire::ticks::to_iso8601(ticks),
            "time column matches ticks"
        );
        assert_eq!(r[2].len(), "2026-11-21T10:23:15.3685376Z".len());
        let v: f32 = r[4].parse().unwrap();
        assert!(v.is_finite());
        let _: u32 = r[5].parse().unwrap();
    }
    assert_eq!(tags.len(), 30, "every demo signal appears");
}

#[test]
fn jsonl_over_compact_and_status_line() {
    let server = Server::start(&["--listen", "127.0.0.1:0", "--demo-signals", "15"]);
    let out = subscribe(
        &server.addr,
        &[
            "--format",
            "jsonl",
            "--compact",
            "--count",
            "45",
            "--filter",
            "FILTER ActiveMeasurements WHERE SignalType = 'FREQ'",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 45);
    for r in &rows {
        assert_eq!(r["point_tag"], "PMU001:FREQ");
        let f = r["value"].as_f64().unwrap();
        assert!((59.9..60.1).contains(&f), "frequency near 60 Hz: {f}");
    }
    let out = subscribe(&server.addr, &["--duration", "2.5"]);
    assert!(out.status.success());
    let status = String::from_utf8(out.stderr).unwrap();
    assert!(
        status.contains("points/s") && status.contains("15 signals"),
        "{status}"
    );
}

#[test]
fn config_file_and_clear_errors() {
    let dir = std::env::temp_dir().join(format!("sttp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("serve.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n[demo]\nsignals = 20\nrate = 10.0\n",
    )
    .unwrap();
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    let out = subscribe(&server.addr, &["--format", "csv", "--count", "20"]);
    assert!(out.status.success());
    // A typo in the config file is named.
    std::fs::write(&cfg, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
    // A refused subscription fails with the publisher's reason.
    let out = subscribe(
        &server.addr,
        &[
            "--filter",
            "FILTER NoSuchTable WHERE True",
            "--no-reconnect",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoSuchTable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nobody listening, no reconnect: a clear error, not a hang. The port is held by a socket
    // that is bound but never listens (the kernel answers a SYN to it with a reset), so no other
    // test can start listening there while this one runs.
    let (closed, addr) = bound_not_listening();
    let out = subscribe(&addr.to_string(), &["--no-reconnect"]);
    drop(closed);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sttp serve --listen 127.0.0.1:0` reports the port it bound (stderr line and
/// `--address-file`), and `sttp subscribe --udp 0` binds a free data-channel port itself, names
/// it in its subscribe request and receives there: nothing in this test picks a port.
#[test]
fn serve_reports_its_bound_address_and_subscribe_udp_0_binds_its_own_port() {
    let dir = std::env::temp_dir().join(format!("sttp-cli-addr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("listen.addr");
    let _ = std::fs::remove_file(&file);
    let mut server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--demo-signals",
        "15",
        "--address-file",
        file.to_str().unwrap(),
    ]);
    let written = std::fs::read_to_string(&file).expect("address file written before the line");
    assert_eq!(written, format!("{}\n", server.addr));
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    assert_ne!(addr.port(), 0);
    let stats = dir.join("stats.json");
    let out = subscribe(
        &server.addr,
        &[
            "--udp",
            "0",
            "--udp-cipher",
            "aes-gcm",
            "--format",
            "csv",
            "--count",
            "30",
            "--no-reconnect",
            "--log",
            "info",
            "--stats-out",
            stats.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let port = stats["udp_port"].as_u64().unwrap();
    assert_ne!(port, 0, "{stats}");
    assert!(stats["datagrams_received"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        err.contains("ephemeral port") && err.contains(&port.to_string()),
        "the chosen port is logged: {err}"
    );
    // A clean stop removes the address file.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(20);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < until, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!file.exists(), "address file removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
