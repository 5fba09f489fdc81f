//! `sttp-perf`: the processes of the end-to-end perf harness (`cargo xtask perf` runs them).
//!
//! - `publish`: a publisher with S synthetic signals at maximum or a target rate.
//! - `receive`: K validating subscribers, or with `--raw` K counting sockets for the ceiling.
//! - `ceiling`: pre-built payloads of a given size, sent as fast as the machine allows.
//!
//! Each prints `ready [ADDR[,ADDR…]]` on stdout once others may connect (the addresses it bound
//! itself, port 0 by default, so no port is picked and released), and writes a JSON report to
//! `--out` (stdout when absent) at the end.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use sttp_control::client::UdpCipherChoice;
use sttp_perf::raw::{self, CeilingOpts, RawReceiveOpts, RawTransport};
use sttp_perf::{publish, receive};

#[derive(Parser)]
#[command(name = "sttp-perf", about = "End-to-end perf harness processes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Tcp,
    Udp,
}

impl From<Transport> for RawTransport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Tcp => RawTransport::Tcp,
            Transport::Udp => RawTransport::Udp,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Cipher {
    None,
    AesGcm,
}

#[derive(Clone, Copy, ValueEnum)]
enum Compression {
    Tssc,
    Compact,
}

#[derive(Subcommand)]
enum Command {
    /// Publisher with the synthetic catalog.
    Publish {
        #[arg(long, default_value_t = 1000)]
        signals: u32,
        /// Points per second in, or `max`.
        #[arg(long, default_value = "max")]
        rate: String,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long, default_value_t = 4096)]
        queue_frames: usize,
        /// Longest run in seconds.
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
        /// Also stop when standard input closes (the harness's stop signal).
        #[arg(long)]
        stop_on_stdin_eof: bool,
        /// Link MTU for UDP datagrams (engine default when absent).
        #[arg(long)]
        mtu: Option<usize>,
        /// Longest a point waits for its packet to fill, µs (engine default when absent).
        #[arg(long)]
        flush_deadline_us: Option<u64>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validating subscribers (or, with --raw, counting sockets).
    Receive {
        /// Publisher `host:port` (validating mode).
        #[arg(long, default_value = "127.0.0.1:7165")]
        publisher: String,
        #[arg(long, default_value_t = 1)]
        subscribers: u32,
        #[arg(long, value_enum, default_value = "tcp")]
        transport: Transport,
        #[arg(long, value_enum, default_value = "aes-gcm")]
        cipher: Cipher,
        #[arg(long, value_enum, default_value = "tssc")]
        compression: Compression,
        #[arg(long, default_value_t = 1000)]
        signals: u32,
        /// First local UDP port (one per subscriber), or the raw TCP listen port. 0 (the
        /// default): free ports of the kernel's choosing; with --raw the `ready` line lists
        /// the bound addresses, comma-separated.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Seconds before the measurement window opens.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Length of the measurement window in seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// PID of the publisher (or ceiling sender), to measure its CPU in the window.
        #[arg(long)]
        publisher_pid: Option<u32>,
        /// Only count datagrams/bytes (ceiling receivers).
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pre-built payloads as fast as possible (the machine's ceiling).
    Ceiling {
        #[arg(long, value_enum, default_value = "udp")]
        transport: Transport,
        /// Destinations, comma-separated (what `receive --raw` printed after `ready`); a
        /// single UDP destination with --subscribers N means N consecutive ports from it.
        #[arg(long, value_delimiter = ',', required = true)]
        dest: Vec<SocketAddr>,
        #[arg(long, default_value_t = 1)]
        subscribers: u32,
        /// Payload bytes per datagram / write.
        #[arg(long)]
        size: usize,
        #[arg(long, default_value_t = 7.0)]
        seconds: f64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sttp-perf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ready(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {what}");
    let _ = out.flush();
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{name}: bad number of seconds {v}"))
}

fn write_json<T: Serialize>(out: Option<&PathBuf>, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match out {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Publish {
            signals,
            rate,
            listen,
            workers,
            queue_frames,
            max_seconds,
            stop_on_stdin_eof,
            mtu,
            flush_deadline_us,
            out,
        } => {
            let rate = match rate.as_str() {
                "max" => None,
                n => Some(
                    n.parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0)
                        .with_context(|| format!("--rate: expected `max` or points/s, got {n}"))?,
                ),
            };
            let opts = publish::PublishOpts {
                listen,
                signals,
                rate,
                workers,
                subscriber_queue_frames: queue_frames,
                max_duration: Duration::from_secs(max_seconds),
                stop_on_stdin_eof,
                mtu,
                flush_deadline: flush_deadline_us.map(Duration::from_micros),
            };
            let report = publish::run(&opts, |addr| ready(&addr.to_string()))?;
            write_json(out.as_ref(), &report)
        }
        Command::Receive {
            publisher,
            subscribers,
            transport,
            cipher,
            compression,
            signals,
            port,
            warmup,
            duration,
            publisher_pid,
            raw,
            out,
        } => {
            let (warmup, duration) = (secs("warmup", warmup)?, secs("duration", duration)?);
            if raw {
                let opts = RawReceiveOpts {
                    transport: transport.into(),
                    base: SocketAddr::from(([127, 0, 0, 1], port)),
                    subscribers,
                    warmup,
                    duration,
                    sender_pid: publisher_pid,
                };
                let report = raw::receive(&opts, |bound| {
                    let list: Vec<String> = bound.iter().map(ToString::to_string).collect();
                    ready(&list.join(","));
                })?;
                return write_json(out.as_ref(), &report);
            }
            let udp = matches!(transport, Transport::Udp).then_some((
                port,
                match cipher {
                    Cipher::None => UdpCipherChoice::None,
                    Cipher::AesGcm => UdpCipherChoice::AesGcm,
                },
            ));
            let opts = receive::ReceiveOpts {
                publisher,
                subscribers,
                signals,
                tssc: matches!(compression, Compression::Tssc),
                warmup,
                duration,
                publisher_pid,
                udp,
            };
            ready("");
            let report = receive::run(&opts)?;
            write_json(out.as_ref(), &report)
        }
        Command::Ceiling {
            transport,
            dest,
            subscribers,
            size,
            seconds,
            out,
        } => {
            let opts = CeilingOpts {
                transport: transport.into(),
                dests: dest,
                subscribers,
                size,
                seconds: secs("seconds", seconds)?,
            };
            let report = raw::ceiling(&opts)?;
            write_json(out.as_ref(), &report)
        }
    }
}
