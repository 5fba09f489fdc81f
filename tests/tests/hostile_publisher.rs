//! Our subscriber against a hostile publisher (issue 16): a fake publisher written here, bound to
//! 127.0.0.1:0 in-process, speaks just enough STTP to serve, per case, a gzip-bomb metadata,
//! truncated gzip, a malformed signal index cache, an oversized frame, a Failed refusal of the
//! connection, silence after Succeeded, or no answer at all. For each, the subscriber must log
//! the reason at warn, close the session, and retry with growing, jittered delays (measured at
//! the fake: from the subscriber's close to its next connect); the timers must fire; the bomb
//! must be refused at the limit. A well-behaved fake is the negative control: data flows, and
//! after every session that delivered data the backoff starts again at 100 ms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use sttp_control::client::{ClientEvent, ReconnectPolicy, Subscriber, SubscriberConfig};
use sttp_proto::gzip;
use sttp_proto::metadata::MetadataError;
use sttp_proto::response::encode_response;
use sttp_proto::session::SessionFailure;
use sttp_proto::sic::{SignalIndexCache, SignalIndexEntry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

// ---- log capture: every warn line of this test process ----

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let c = Captured::default();
        let w = c.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(move || w.clone())
            .with_ansi(false)
            .try_init();
        c
    })
}

fn warn_lines_containing(needle: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains("WARN") && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

// ---- the fake publisher ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// MetadataRefresh → Succeeded with 1 GiB of zeros gzipped (~1 MB).
    Bomb,
    /// MetadataRefresh → Succeeded with gzip cut short.
    TruncatedGzip,
    /// Metadata fine; Subscribe → a cache claiming entries it does not carry.
    MalformedCache,
    /// A frame header announcing 2 GiB, at once, on every connection.
    OversizedFrame,
    /// Failed(Connect) "too many connections from this address", then close.
    TooManyConnections,
    /// Metadata, cache, Succeeded(Subscribe) — then nothing, ever.
    SilentAfterSucceeded,
    /// Accepts and never answers.
    NeverAnswers,
    /// Behaves: data every 20 ms, and closes each session after `GOOD_SESSION`.
    Good,
}

const GOOD_SESSION: Duration = Duration::from_millis(300);
const SIGNALS: i32 = 4;

/// One connection as seen by the fake: when it was accepted and when the subscriber closed it.
#[derive(Debug, Clone, Copy)]
struct Conn {
    accepted: Instant,
    closed: Option<Instant>,
}

struct Fake {
    addr: String,
    conns: Arc<Mutex<Vec<Conn>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| gzip::compress(&vec![0u8; 1 << 30]))
}

fn frame(code: u8, command: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    encode_response(&mut f, code, command, payload);
    f
}

fn cache() -> SignalIndexCache {
    SignalIndexCache::new(
        Uuid::from_u128(7),
        (0..SIGNALS)
            .map(|i| SignalIndexEntry {
                runtime_id: i,
                signal_id: Uuid::from_u128(0x100 + i as u128),
                source: "FAKE".into(),
                key_id: i as u64,
            })
            .collect(),
        vec![],
    )
}

async fn start_fake(mode: Mode) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let conns = Arc::new(Mutex::new(Vec::new()));
    let record = conns.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let index = {
                let mut c = record.lock().unwrap();
                c.push(Conn {
                    accepted: Instant::now(),
                    closed: None,
                });
                c.len() - 1
            };
            let record = record.clone();
            tokio::spawn(async move {
                serve(mode, stream).await;
                record.lock().unwrap()[index].closed = Some(Instant::now());
            });
        }
    });
    Fake { addr, conns, task }
}

/// Reads one command frame body; None at EOF or error.
async fn read_command(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Serves one connection until the subscriber closes it (returns then).
async fn serve(mode: Mode, mut s: TcpStream) {
    let started = Instant::now();
    match mode {
        Mode::OversizedFrame => {
            let _ = s.write_all(&0x8000_0000u32.to_be_bytes()).await;
        }
        Mode::TooManyConnections => {
            let msg = b"too many connections from this address";
            let _ = s.write_all(&frame(0x81, 0x00, msg)).await;
            // Like the stock publishers: close about a second after the refusal, unless the
            // subscriber closes first (it should, at once).
            let mut sink = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
            return;
        }
        _ => {}
    }
    let mut tssc = sttp_wire::tssc::PacketEncoder::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut streaming = false;
    let mut n = 0u64;
    loop {
        tokio::select! {
            cmd = read_command(&mut s) => {
                let Some(cmd) = cmd else { return };
                let reply: Vec<u8> = match (mode, cmd.first().copied()) {
                    (Mode::NeverAnswers | Mode::OversizedFrame, _) => continue,
                    (Mode::Bomb, Some(0x01)) => frame(0x80, 0x01, bomb()),
                    (Mode::TruncatedGzip, Some(0x01)) => {
                        let z = gzip::compress(&sttp_proto::metadata::xml::write_xml(
                            &sttp_proto::metadata::DataSet::new("DataSet"),
                        ).into_bytes());
                        frame(0x80, 0x01, &z[..z.len() - 8])
                    }
                    (_, Some(0x01)) => frame(0x80, 0x01, &[]),
                    (Mode::MalformedCache, Some(0x02)) => {
                        let mut bad = vec![0u8];
                        bad.extend_from_slice(&28u32.to_be_bytes());
                        bad.extend_from_slice(&[0; 16]);
                        bad.extend_from_slice(&1_000_000u32.to_be_bytes());
                        frame(0x83, 0x02, &bad)
                    }
                    (_, Some(0x02)) => {
                        let mut f = frame(0x83, 0x02, &cache().encode_payload(2, 0, false, sttp_proto::encoding::StringEncoding::Utf8));
                        f.extend_from_slice(&frame(0x80, 0x02, b"Client subscribed"));
                        streaming = mode == Mode::Good;
                        f
                    }
                    _ => continue,
                };
                if s.write_all(&reply).await.is_err() {
                    // The subscriber may close while a bomb is still being written.
                    let mut sink = [0u8; 1024];
                    while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
                    return;
                }
            }
            _ = ticker.tick(), if streaming => {
                if started.elapsed() >= GOOD_SESSION {
                    return;
                }
                let mut p = Vec::new();
                tssc.begin(&mut p, 0, 32_000);
                for id in 0..SIGNALS {
                    let m = sttp_wire::Measurement {
                        runtime_id: id,
                        timestamp: 638_000_000_000_000_000 + n as i64 * 333_333,
                        value: n as f32,
                        flags: 0,
                    };
                    assert!(tssc.try_add(&mut p, &m));
                }
                tssc.finish(&mut p);
                n += 1;
                if s.write_all(&frame(0x82, 0x02, &p)).await.is_err() {
                    return;
                }
            }
        }
    }
}

// ---- the subscriber under test ----

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_millis(400);
const DATA_LOSS_TIMEOUT: Duration = Duration::from_millis(400);
const METADATA_LIMIT: usize = 4 << 20;

fn config(addr: &str) -> SubscriberConfig {
    let mut c = SubscriberConfig::new(addr);
    c.subscribe_timeout = Some(SUBSCRIBE_TIMEOUT);
    c.data_loss_timeout = Some(DATA_LOSS_TIMEOUT);
    c.max_metadata_bytes = METADATA_LIMIT;
    c.reconnect = ReconnectPolicy::default();
    c
}

struct Observed {
    failures: Vec<SessionFailure>,
    data_losses: u32,
    points: u64,
    /// (attempt, delay) of every ReconnectScheduled.
    scheduled: Vec<(u32, Duration)>,
}

/// Runs a library subscriber against `fake` until it has connected `sessions` times.
async fn observe(fake: &Fake, sessions: usize, limit: Duration) -> Observed {
    let mut sub = Subscriber::start(config(&fake.addr));
    let mut o = Observed {
        failures: vec![],
        data_losses: 0,
        points: 0,
        scheduled: vec![],
    };
    let deadline = tokio::time::Instant::now() + limit;
    let mut connected = 0;
    while connected < sessions {
        let ev = tokio::time::timeout_at(deadline, sub.next_event())
            .await
            .unwrap_or_else(|_| panic!("only {connected} of {sessions} sessions within {limit:?}"))
            .expect("subscriber stopped");
        match ev {
            ClientEvent::Connected { .. } => connected += 1,
            ClientEvent::SessionFailed(f) => o.failures.push(f),
            ClientEvent::DataLoss { .. } => o.data_losses += 1,
            ClientEvent::Measurements(b) => o.points += b.len() as u64,
            ClientEvent::ReconnectScheduled { delay, attempt } => {
                o.scheduled.push((attempt, delay))
            }
            _ => {}
        }
    }
    // Let the fake's accept loop record the last connection before it ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sub.stop().await;
    o
}

/// The delays the fake measured between the subscriber's close of one session and its next
/// connect.
fn measured_delays(fake: &Fake) -> Vec<Duration> {
    let c = fake.conns.lock().unwrap().clone();
    c.windows(2)
        .filter_map(|w| Some(w[1].accepted.saturating_duration_since(w[0].closed?)))
        .collect()
}

/// Lengths of every session but the last (which the test's stop ends).
fn session_lengths(fake: &Fake) -> Vec<Duration> {
    let c = fake.conns.lock().unwrap().clone();
    c[..c.len().saturating_sub(1)]
        .iter()
        .filter_map(|c| Some(c.closed?.saturating_duration_since(c.accepted)))
        .collect()
}

/// Every measured delay lies within the jitter bounds of 100 ms · 2^(n−1) (±20 %, plus
/// scheduling slack), and each one is longer than the one before.
fn assert_growing_backoff(fake: &Fake, what: &str) {
    let delays = measured_delays(fake);
    assert!(delays.len() >= 3, "{what}: too few retries: {delays:?}");
    for (i, d) in delays.iter().enumerate() {
        let base = 0.1 * f64::from(1u32 << i);
        let (lo, hi) = (base * 0.8 - 0.01, base * 1.2 + 0.08);
        let s = d.as_secs_f64();
        assert!(
            (lo..=hi).contains(&s),
            "{what}: retry {} after {s:.3} s, outside [{lo:.3}, {hi:.3}]; all: {delays:?}",
            i + 1
        );
    }
    for w in delays.windows(2) {
        assert!(w[1] > w[0], "{what}: delays do not grow: {delays:?}");
    }
    eprintln!("{what}: measured retry delays {delays:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_at_the_limit_logged_at_warn_and_retried_with_growing_delays() {
    logs();
    let _ = bomb();
    let fake = start_fake(Mode::Bomb).await;
    let o = observe(&fake, 5, Duration::from_secs(20)).await;
    assert!(o.failures.len() >= 4, "{:?}", o.failures);
    for f in &o.failures {
        assert_eq!(
            *f,
            SessionFailure::Metadata(MetadataError::TooLarge {
                size: METADATA_LIMIT + 1,
                limit: METADATA_LIMIT
            }),
            "the bomb is refused at the configured limit, not inflated to 1 GiB"
        );
    }
    assert_eq!(o.points, 0);
    assert_growing_backoff(&fake, "gzip bomb");
    assert!(!warn_lines_containing("over the limit of 4194304").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_gzip_metadata_fails_the_session_and_backs_off() {
    logs();
    let fake = start_fake(Mode::TruncatedGzip).await;
    let o = observe(&fake, 5, Duration::from_secs(20)).await;
    assert!(
        o.failures
            .iter()
            .all(|f| matches!(f, SessionFailure::Metadata(MetadataError::Gzip(_)))),
        "{:?}",
        o.failures
    );
    assert_growing_backoff(&fake, "truncated gzip");
    assert!(
        !warn_lines_containing("metadata could not be used: metadata payload: invalid gzip")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_cache_fails_the_session_and_backs_off() {
    logs();
    let fake = start_fake(Mode::MalformedCache).await;
    let o = observe(&fake, 5, Duration::from_secs(20)).await;
    assert!(o.failures.len() >= 4);
    assert!(o
        .failures
        .iter()
        .all(|f| matches!(f, SessionFailure::SignalIndexCache(_))));
    assert_growing_backoff(&fake, "malformed cache");
    assert!(!warn_lines_containing("signal index cache could not be used").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_on_every_connection_backs_off() {
    logs();
    let fake = start_fake(Mode::OversizedFrame).await;
    let o = observe(&fake, 5, Duration::from_secs(20)).await;
    assert_eq!(o.points, 0);
    assert_growing_backoff(&fake, "oversized frame");
    // The attempt number climbs instead of staying at 1.
    let attempts: Vec<u32> = o.scheduled.iter().map(|(a, _)| *a).collect();
    assert_eq!(attempts[..4], [1, 2, 3, 4], "{attempts:?}");
    assert!(!warn_lines_containing("exceeds the limit").is_empty());
    assert!(!warn_lines_containing("(attempt 3)").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_the_per_source_limit_is_a_failed_session() {
    logs();
    let fake = start_fake(Mode::TooManyConnections).await;
    let o = observe(&fake, 5, Duration::from_secs(20)).await;
    assert!(o.failures.iter().all(
        |f| matches!(f, SessionFailure::Refused { command: 0, message } if message.contains("too many"))
    ));
    assert_growing_backoff(&fake, "too many connections");
    // Said once per refusal: one warn line per failed session, not two.
    let lines = warn_lines_containing("publisher refused command 0x00: too many connections");
    assert!(!lines.is_empty());
    assert!(lines.len() <= o.failures.len() + 1, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_after_succeeded_fires_the_data_loss_timer_and_backs_off() {
    logs();
    let fake = start_fake(Mode::SilentAfterSucceeded).await;
    let o = observe(&fake, 4, Duration::from_secs(20)).await;
    assert!(o.data_losses >= 3, "{o:?}", o = o.failures);
    assert!(o
        .failures
        .iter()
        .all(|f| matches!(f, SessionFailure::DataLoss { .. })));
    // Each session lasted about the data-loss timeout (it ran from Succeeded, with no data).
    for len in session_lengths(&fake) {
        assert!(
            len >= DATA_LOSS_TIMEOUT && len < DATA_LOSS_TIMEOUT + Duration::from_millis(600),
            "session of {len:?}"
        );
    }
    assert_growing_backoff(&fake, "silent after Succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_never_answers_hits_the_connect_to_subscribed_timeout() {
    logs();
    let fake = start_fake(Mode::NeverAnswers).await;
    let o = observe(&fake, 4, Duration::from_secs(20)).await;
    assert!(o.failures.len() >= 3);
    assert!(o
        .failures
        .iter()
        .all(|f| matches!(f, SessionFailure::SubscribeTimeout { .. })));
    for len in session_lengths(&fake) {
        assert!(
            len >= SUBSCRIBE_TIMEOUT && len < SUBSCRIBE_TIMEOUT + Duration::from_millis(600),
            "session of {len:?}"
        );
    }
    assert_growing_backoff(&fake, "never answers");
    assert!(!warn_lines_containing("not subscribed 0.4 s after connecting").is_empty());
}

/// Negative control: a publisher that behaves delivers data, no session fails, and since every
/// session delivered data the backoff restarts at 100 ms each time instead of growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_a_good_publisher_delivers_data_and_the_backoff_resets() {
    logs();
    let fake = start_fake(Mode::Good).await;
    let o = observe(&fake, 5, Duration::from_secs(20)).await;
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert!(o.points > 0);
    let delays = measured_delays(&fake);
    assert!(delays.len() >= 4, "{delays:?}");
    for d in &delays {
        assert!(
            *d >= Duration::from_millis(75) && *d <= Duration::from_millis(200),
            "after a session with data the first retry is 100 ms ± 20 %: {delays:?}"
        );
    }
    assert!(
        o.scheduled.iter().all(|(attempt, _)| *attempt == 1),
        "{:?}",
        o.scheduled
    );
}

// ---- the `sttp subscribe` binary ----

fn sttp_bin() -> std::path::PathBuf {
    std::env::var_os("STTP_BIN")
        .map(Into::into)
        .unwrap_or_else(|| sttp_tests::repo_root().join("target/release/sttp"))
}

/// Peak resident memory of a running process, from /proc (kB).
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_non_zero_on_a_bomb_with_bounded_memory_and_says_it_once() {
    let bin = sttp_bin();
    if !bin.exists() {
        panic!(
            "{} missing: cargo build --release -p sttp-control --bin sttp",
            bin.display()
        );
    }
    let _ = bomb();
    let fake = start_fake(Mode::Bomb).await;
    let mut child = std::process::Command::new(&bin)
        .args([
            "subscribe",
            &fake.addr,
            "--no-reconnect",
            "--max-metadata-bytes",
            "16777216",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let started = Instant::now();
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sttp subscribe did not exit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    eprintln!("{err}\npeak RSS {peak} kB");
    assert!(!status.success(), "exit status {status:?}");
    assert_eq!(
        err.matches("over the limit of 16777216").count(),
        1,
        "the reason is said once: {err}"
    );
    assert!(err.contains("WARN"), "{err}");
    // 16 MiB limit against a 1 GiB bomb: the process never got near the bomb's size.
    assert!(peak < 120 * 1024, "peak RSS {peak} kB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_non_zero_with_zero_points_when_it_never_subscribed() {
    let bin = sttp_bin();
    let fake = start_fake(Mode::NeverAnswers).await;
    let addr = fake.addr.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .args([
                "subscribe",
                &addr,
                "--duration",
                "1.5",
                "--subscribe-timeout",
                "0.4",
            ])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no data received"), "{err}");
    assert!(err.contains("not subscribed in time"), "{err}");
    assert!(
        err.contains("(attempt 2)"),
        "retries with a growing attempt number: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_the_binary_exits_zero_after_receiving_points() {
    let bin = sttp_bin();
    let fake = start_fake(Mode::Good).await;
    let addr = fake.addr.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&bin)
            .args(["subscribe", &addr, "--count", "20", "--format", "csv"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 21);
}

// ---- `--udp` against a publisher that does not take up our cipher extension ----

/// A stock-like publisher: answers Subscribe with a cache and Succeeded, ignores
/// `sttpExt={udpCipher=…}`, never announces a key, and sends plain TSSC data packets as bare
/// response bodies to the subscriber's `localport` every 20 ms.
async fn start_stock_udp_fake() -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let conns = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(async move {
        while let Ok((mut s, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let mut target = None;
                let mut ticker = tokio::time::interval(Duration::from_millis(20));
                let mut n = 0u64;
                loop {
                    tokio::select! {
                        cmd = read_command(&mut s) => {
                            let Some(cmd) = cmd else { return };
                            match cmd.first() {
                                Some(0x01) => { let _ = s.write_all(&frame(0x80, 0x01, &[])).await; }
                                Some(0x02) => {
                                    let text = String::from_utf8_lossy(&cmd);
                                    let port: u16 = text
                                        .split("localport=")
                                        .nth(1)
                                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                                        .and_then(|p| p.parse().ok())
                                        .expect("dataChannel localport in Subscribe");
                                    target = Some(std::net::SocketAddr::new(peer.ip(), port));
                                    let mut f = frame(0x83, 0x02, &cache().encode_payload(2, 0, false, sttp_proto::encoding::StringEncoding::Utf8));
                                    f.extend_from_slice(&frame(0x80, 0x02, b"Client subscribed over UDP"));
                                    let _ = s.write_all(&f).await;
                                }
                                _ => {}
                            }
                        }
                        _ = ticker.tick(), if target.is_some() => {
                            let mut p = Vec::new();
                            // Every packet is a TSSC reset (fresh encoder): each datagram decodes alone.
                            let mut tssc = sttp_wire::tssc::PacketEncoder::new();
                            tssc.begin(&mut p, 0, 32_000);
                            for id in 0..SIGNALS {
                                let m = sttp_wire::Measurement {
                                    runtime_id: id,
                                    timestamp: 638_000_000_000_000_000 + n as i64 * 333_333,
                                    value: n as f32,
                                    flags: 0,
                                };
                                assert!(tssc.try_add(&mut p, &m));
                            }
                            tssc.finish(&mut p);
                            n += 1;
                            let datagram = frame(0x82, 0x02, &p);
                            let _ = udp.send_to(&datagram[4..], target.unwrap()).await;
                        }
                    }
                }
            });
        }
    });
    Fake { addr, conns, task }
}

fn udp_config(addr: &str, cipher: sttp_control::client::UdpCipherChoice) -> SubscriberConfig {
    let mut c = config(addr);
    c.data_loss_timeout = Some(Duration::from_secs(5));
    c.udp_key_wait = Duration::from_millis(300);
    c.udp = Some(sttp_control::client::UdpChannel { port: 0, cipher });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_prefer_falls_back_to_plain_datagrams_with_a_warning() {
    logs();
    let fake = start_stock_udp_fake().await;
    let mut sub = Subscriber::start(udp_config(
        &fake.addr,
        sttp_control::client::UdpCipherChoice::Prefer,
    ));
    let mut fell_back = None;
    let mut points_after = 0u64;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = sub.next_event().await {
            match ev {
                ClientEvent::UdpCipherFallback => fell_back = Some(started.elapsed()),
                ClientEvent::Measurements(b) if fell_back.is_some() => {
                    points_after += b.len() as u64;
                    if points_after >= 40 {
                        break;
                    }
                }
                ClientEvent::Measurements(_) => panic!("plain data accepted before the fallback"),
                ClientEvent::SessionFailed(f) => panic!("{f}"),
                _ => {}
            }
        }
    })
    .await
    .expect("points after the fallback");
    let stats = sub.stats();
    sub.stop().await;
    let at = fell_back.unwrap();
    assert!(at >= Duration::from_millis(300), "fell back after {at:?}");
    assert_eq!(stats.key_epochs_installed, 0);
    // Datagrams that came during the wait were refused (and said so at warn), none after.
    assert!(stats.auth_failures > 0);
    assert!(!warn_lines_containing("did not take up the authenticated UDP cipher").is_empty());
    assert!(!warn_lines_containing("UDP datagram refused").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_required_aes_gcm_stops_with_a_clear_reason_against_a_stock_publisher() {
    let fake = start_stock_udp_fake().await;
    let mut sub = Subscriber::start(udp_config(
        &fake.addr,
        sttp_control::client::UdpCipherChoice::AesGcm,
    ));
    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match sub.next_event().await {
                Some(ClientEvent::Stopped { reason }) => return reason,
                Some(ClientEvent::Measurements(_)) => panic!("plain data accepted"),
                Some(_) => {}
                None => panic!("no Stopped event"),
            }
        }
    })
    .await
    .unwrap();
    assert!(
        reason.contains("did not take up the authenticated UDP cipher"),
        "{reason}"
    );
    assert_eq!(sub.stats().points_received, 0);
    assert!(sub.stats().auth_failures > 0);
}

/// Control: against our own publisher, which takes the extension up, there is no fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_udp_prefer_against_our_publisher_uses_the_authenticated_cipher() {
    let mut tp = sttp_tests::TestPublisher::start(SIGNALS as usize).await;
    tp.stream(Duration::from_millis(20), 0);
    let mut c = udp_config(
        &tp.publisher().local_addr().to_string(),
        sttp_control::client::UdpCipherChoice::Prefer,
    );
    c.session.settings.filter_expression = "FILTER ActiveMeasurements WHERE True".into();
    let mut sub = Subscriber::start(c);
    let mut points = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = sub.next_event().await {
            match ev {
                ClientEvent::UdpCipherFallback => panic!("fell back against our publisher"),
                ClientEvent::Measurements(b) => {
                    points += b.len();
                    if points >= 200 {
                        break;
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    // Past the key wait: still authenticated.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = sub.stats();
    sub.stop().await;
    assert_eq!(stats.key_epochs_installed, 1);
    assert_eq!(stats.auth_failures, 0);
    tp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_falls_back_by_default_and_fails_with_explicit_aes_gcm() {
    let bin = sttp_bin();
    let fake = start_stock_udp_fake().await;
    let run = |extra: &'static [&'static str]| {
        let bin = bin.clone();
        let addr = fake.addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["subscribe", addr.as_str(), "--udp", "0", "--format", "csv"];
            args.extend_from_slice(extra);
            std::process::Command::new(&bin)
                .args(&args)
                .output()
                .unwrap()
        })
    };
    let out = run(&["--count", "20"]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("accepting plain, unauthenticated datagrams"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 21);
    let out = run(&["--udp-cipher", "aes-gcm", "--duration", "8"])
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        err.matches("did not take up the authenticated UDP cipher")
            .count(),
        1,
        "{err}"
    );
}
