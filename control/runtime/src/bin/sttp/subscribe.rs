//! `sttp subscribe`: connect, subscribe, and show or write what arrives.

use crate::shutdown_signal;
use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sttp_control::client::{ClientEvent, Subscriber, SubscriberConfig};
use sttp_control::metadata_cache::MetadataCache;
use sttp_proto::connstr::SubscriptionSettings;
use sttp_proto::encoding::StringEncoding;
use sttp_proto::session::{ReceivedMeasurement, SessionFailure};
use sttp_wire::ticks;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    /// A live one-line status.
    Status,
    /// Every point as a CSV row.
    Csv,
    /// Every point as a JSON line.
    Jsonl,
}

#[derive(Parser, Debug)]
pub(crate) struct SubscribeArgs {
    /// Publisher address, HOST:PORT.
    address: String,
    /// Filter expression selecting the signals.
    #[arg(long, default_value = "FILTER ActiveMeasurements WHERE True")]
    filter: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Status)]
    format: Format,
    /// Ask for the compact format instead of TSSC.
    #[arg(long)]
    compact: bool,
    /// Stop after this many points.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Protocol version to announce (1–3).
    #[arg(long, default_value_t = 2)]
    protocol_version: u8,
    /// Use UTF-16LE strings on the command channel (as .NET subscribers do).
    #[arg(long)]
    utf16: bool,
    /// Compact format: millisecond-resolution time offsets.
    #[arg(long)]
    millisecond_resolution: bool,
    /// Throttle: publish the latest values every SECS seconds.
    #[arg(long)]
    throttle: Option<f64>,
    /// Write the received metadata XML to this file.
    #[arg(long)]
    metadata_out: Option<PathBuf>,
    /// Do not reconnect when the connection drops.
    #[arg(long)]
    no_reconnect: bool,
    /// Restart the connection when no data arrived for this many seconds after the
    /// subscription was acknowledged (0 = never).
    #[arg(long, default_value_t = 30.0)]
    data_loss_timeout: f64,
    /// Restart the connection when it is not subscribed (acknowledged) this many seconds
    /// after connecting (0 = never).
    #[arg(long, default_value_t = 30.0)]
    subscribe_timeout: f64,
    /// Largest metadata document accepted after inflation, in bytes (also bounds response
    /// frames); a larger one fails the session.
    #[arg(long, value_name = "BYTES", default_value_t = sttp_proto::session::subscriber::MAX_METADATA_BYTES)]
    max_metadata_bytes: usize,
    #[command(flatten)]
    tls: crate::subscribe_tls::SubscribeTlsArgs,
    /// Receive the data over UDP on this local port (compact format; the publisher sends to
    /// this host's address). 0 = a free port the kernel picks, logged at info and named in the
    /// subscribe request (kept across reconnects when still free).
    #[arg(long, value_name = "LOCALPORT")]
    udp: Option<u16>,
    /// UDP datagram protection: aes-gcm (authenticated and replay-protected, required: fail
    /// if the publisher does not take it up), none (plain, what stock publishers send). Without
    /// this flag: aes-gcm when the publisher takes it up, otherwise a warning and plain
    /// datagrams.
    #[arg(long, value_name = "aes-gcm|none")]
    udp_cipher: Option<sttp_control::client::UdpCipherChoice>,
    /// Write the client's counters (points, datagrams, refused datagrams, keys) as JSON to
    /// FILE at exit.
    #[arg(long, value_name = "FILE")]
    stats_out: Option<PathBuf>,
}

/// Writes received points in the chosen format.
struct Output {
    format: Format,
    out: std::io::BufWriter<std::io::Stdout>,
    metadata: Option<Arc<MetadataCache>>,
    total: u64,
    window_points: u64,
    window_start: Instant,
    signals: std::collections::HashSet<uuid::Uuid>,
    latest: i64,
    interactive: bool,
}

impl Output {
    fn new(format: Format) -> Self {
        Self {
            format,
            out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
            metadata: None,
            total: 0,
            window_points: 0,
            window_start: Instant::now(),
            signals: std::collections::HashSet::new(),
            latest: 0,
            interactive: std::io::stderr().is_terminal(),
        }
    }

    fn header(&mut self) -> std::io::Result<()> {
        if self.format == Format::Csv {
            writeln!(self.out, "signal_id,point_tag,time,ticks,value,flags")?;
        }
        Ok(())
    }

    fn tag(&self, m: &ReceivedMeasurement) -> &str {
        self.metadata
            .as_ref()
            .and_then(|c| c.signal(&m.signal_id))
            .map(|s| s.point_tag.as_str())
            .unwrap_or("")
    }

    fn point(&mut self, m: &ReceivedMeasurement) -> std::io::Result<()> {
        self.total += 1;
        self.window_points += 1;
        self.latest = self.latest.max(ticks::value(m.timestamp));
        match self.format {
            Format::Status => {
                self.signals.insert(m.signal_id);
            }
            Format::Csv => {
                let tag = csv_field(self.tag(m));
                writeln!(
                    self.out,
                    "{},{},{},{},{},{}",
                    m.signal_id,
                    tag,
                    ticks::to_iso8601(m.timestamp),
                    m.timestamp,
                    m.value,
                    m.flags
                )?;
            }
            Format::Jsonl => {
                let line = serde_json::json!({
                    "signal_id": m.signal_id.to_string(),
                    "point_tag": self.tag(m),
                    "time": ticks::to_iso8601(m.timestamp),
                    "ticks": m.timestamp,
                    "value": json_value(m.value),
                    "flags": m.flags,
                });
                writeln!(self.out, "{line}")?;
            }
        }
        Ok(())
    }

    fn status(&mut self, force: bool) {
        let elapsed = self.window_start.elapsed();
        if (!force && elapsed < Duration::from_secs(1)) || (force && self.window_points == 0) {
            return;
        }
        if self.format == Format::Status {
            let rate = self.window_points as f64 / elapsed.as_secs_f64().max(1e-9);
            let latest = if self.latest > 0 {
                ticks::to_iso8601(self.latest)
            } else {
                "-".into()
            };
            let line = format!(
                "{rate:>12.0} points/s  {:>6} signals  latest {latest}  total {}",
                self.signals.len(),
                self.total
            );
            if self.interactive {
                eprint!("\r{line}  ");
            } else {
                eprintln!("{line}");
            }
        }
        self.window_points = 0;
        self.window_start = Instant::now();
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn json_value(v: f32) -> serde_json::Value {
    if v.is_finite() {
        // Through the shortest decimal of the f32, so 60.01 prints as 60.01.
        v.to_string()
            .parse::<f64>()
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::String(v.to_string())
    }
}

pub(crate) async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=3).contains(&args.protocol_version),
        "--protocol-version must be 1, 2 or 3"
    );
    let mut config = SubscriberConfig::new(args.address.clone());
    config.session.version = args.protocol_version;
    config.session.tssc = !args.compact;
    if args.utf16 {
        config.session.encoding = StringEncoding::Utf16Le;
    }
    config.session.settings = SubscriptionSettings {
        filter_expression: args.filter.clone(),
        use_millisecond_resolution: args.millisecond_resolution,
        throttled: args.throttle.is_some(),
        publish_interval: args.throttle.unwrap_or(1.0),
        ..SubscriptionSettings::default()
    };
    config.reconnect.enabled = !args.no_reconnect;
    config.tls = args.tls.settings()?;
    config.udp = args.udp.map(|port| sttp_control::client::UdpChannel {
        port,
        cipher: args
            .udp_cipher
            .unwrap_or(sttp_control::client::UdpCipherChoice::Prefer),
    });
    config.data_loss_timeout =
        (args.data_loss_timeout > 0.0).then(|| Duration::from_secs_f64(args.data_loss_timeout));
    config.subscribe_timeout =
        (args.subscribe_timeout > 0.0).then(|| Duration::from_secs_f64(args.subscribe_timeout));
    config.max_metadata_bytes = args.max_metadata_bytes;
    let mut output = Output::new(args.format);
    output.header()?;
    let mut sub = Subscriber::start(config);
    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let sleep = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut failure: Option<String> = None;
    // The latest reason a session ended (peer text never: it was logged, escaped, once).
    let mut last_failure: Option<String> = None;
    let mut pending_kind: Option<&'static str> = None;
    let mut subscribed = false;
    let mut interrupted = false;
    'run: loop {
        tokio::select! {
            _ = &mut sleep => break,
            _ = &mut shutdown => {
                interrupted = true;
                break
            }
            _ = ticker.tick() => output.status(false),
            ev = sub.next_event() => {
                let Some(ev) = ev else { break };
                match ev {
                    ClientEvent::Measurements(batch) => {
                        for m in &batch {
                            if args.count.is_some_and(|c| output.total >= c) {
                                break 'run;
                            }
                            output.point(m)?;
                        }
                        if args.count.is_some_and(|c| output.total >= c) {
                            break 'run;
                        }
                    }
                    ClientEvent::Metadata(cache) => {
                        if let Some(path) = &args.metadata_out {
                            let xml = sttp_proto::metadata::xml::write_xml(&cache.dataset);
                            std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
                        }
                        tracing::info!(signals = cache.len(), "metadata received");
                        output.metadata = Some(cache);
                    }
                    ClientEvent::Connected { address } => tracing::info!(%address, "connected"),
                    // The client logged the reason, the delay and the attempt at warn, once.
                    ClientEvent::Disconnected { reason } => {
                        last_failure = Some(pending_kind.take().map_or(reason, str::to_owned));
                    }
                    ClientEvent::ReconnectScheduled { .. } | ClientEvent::DataLoss { .. } => {}
                    ClientEvent::SessionFailed(f) => {
                        if let SessionFailure::Refused { command: command @ (0x02 | 0x06), .. } = f {
                            // The request itself was refused: sending it again cannot help.
                            failure = Some(format!(
                                "the publisher refused command 0x{command:02X} (its message is in the warning above)"
                            ));
                            break 'run;
                        }
                        pending_kind = Some(f.kind());
                    }
                    ClientEvent::UdpCipherFallback => {}
                    ClientEvent::SubscriptionUpdated { signals, .. } => {
                        subscribed = true;
                        tracing::info!(signals, "subscribed")
                    }
                    ClientEvent::Session(sttp_proto::session::SubscriberEvent::Succeeded { command: 0x02, .. }) => {
                        subscribed = true;
                    }
                    ClientEvent::Session(e) => tracing::debug!(?e, "session event"),
                    ClientEvent::Connecting { .. } => {}
                    ClientEvent::Stopped { reason } => {
                        failure = Some(reason);
                        break 'run;
                    }
                }
            }
        }
    }
    output.status(true);
    if output.interactive && output.format == Format::Status {
        eprintln!();
    }
    output.out.flush()?;
    let stats = sub.stats();
    sub.stop().await;
    if let Some(path) = &args.stats_out {
        let text = serde_json::to_vec_pretty(&stats)?;
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the stats file {}", path.display()))?;
    }
    if failure.is_none()
        && !interrupted
        && output.total == 0
        && (!subscribed || last_failure.is_some())
    {
        // Never exit 0 having received nothing from a session that never subscribed (or
        // failed): scripts and CI must see it.
        failure = Some(match &last_failure {
            Some(why) => format!("no data received; the last session ended: {why}"),
            None if !subscribed => "no data received: never subscribed".to_owned(),
            None => "no data received".to_owned(),
        });
    }
    match failure {
        Some(reason) => anyhow::bail!("{reason}"),
        None => Ok(()),
    }
}
