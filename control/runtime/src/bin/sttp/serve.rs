//! `sttp serve`: the publisher with its embedded demo source.

use crate::shutdown_signal;
use clap::Parser;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sttp_control::config::ServeConfig;
use sttp_control::demo::DemoFleet;
use sttp_control::server::{Publisher, PublisherConfig};
use sttp_proto::catalog::Catalog;

#[derive(Parser, Debug)]
pub(crate) struct ServeArgs {
    /// Listen address (default 127.0.0.1:7165). Port 0: a free port of the kernel's choosing;
    /// the bound address is printed on stderr (`sttp publisher on ADDR …`) and written to
    /// --address-file.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Once listening, write the bound command-channel address (`IP:PORT` and a newline) to
    /// FILE, atomically (a temporary file renamed over it); removed again at a clean shutdown.
    /// For scripts and test harnesses that start `sttp serve --listen 127.0.0.1:0`.
    #[arg(long, value_name = "FILE")]
    address_file: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Demo source: number of signals (15 per PMU).
    #[arg(long)]
    demo_signals: Option<usize>,
    /// Demo source: frames per second.
    #[arg(long)]
    demo_rate: Option<f64>,
    /// Data-plane worker threads.
    #[arg(long)]
    workers: Option<usize>,
    /// Subscriber access policy file (TOML; reloaded on SIGHUP and when it changes).
    #[arg(long, value_name = "FILE")]
    access: Option<PathBuf>,
    #[command(flatten)]
    tls: crate::serve_tls::ServeTlsArgs,
    #[command(flatten)]
    dataplane: crate::serve_dataplane::ServeDataPlaneArgs,
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(n) = args.demo_signals {
        config.demo.signals = n;
        config.demo.enabled = true;
    }
    if let Some(r) = args.demo_rate {
        config.demo.rate = r;
        config.demo.enabled = true;
    }
    if let Some(w) = args.workers {
        config.workers = w;
    }
    args.tls.apply(&mut config, args.listen.is_some())?;
    args.dataplane.apply(&mut config);
    if let Some(a) = &args.access {
        config.access_file = Some(a.clone());
    }
    config.validate()?;
    anyhow::ensure!(
        config.demo.enabled,
        "no source configured: enable [demo] in the config file"
    );
    let node_id = config.node_id.unwrap_or_else(uuid::Uuid::new_v4);
    let fleet = DemoFleet::new(&config.demo);
    let catalog = Catalog::new(node_id, fleet.metadata().clone());
    tracing::info!(
        signals = catalog.signals().len(),
        pmus = fleet
            .metadata()
            .table("DeviceDetail")
            .map(|t| t.len())
            .unwrap_or(0),
        rate = config.demo.rate,
        "demo PMU fleet ready"
    );
    let publisher = Publisher::start(
        PublisherConfig {
            listen: config.listen,
            max_connections: config.max_connections,
            engine: config.dataplane.engine(config.workers)?,
            key_rotation: config.dataplane.key_rotation(),
            legacy_cipher_keys: config.dataplane.legacy_cipher_keys,
            subscriber_queue_frames: config.subscriber_queue_frames,
            name: config.name.clone(),
            transport: crate::serve_tls::transport(&config)?,
            limits: config.limits.to_limits()?,
            commands: config.commands.to_settings()?,
            access: config
                .access_file
                .as_ref()
                .map(sttp_control::access::AccessControl::load)
                .transpose()?,
        },
        catalog,
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let generator = fleet.spawn(&publisher.catalog(), publisher.source(), stop.clone())?;
    if let Some(path) = &args.address_file {
        write_address_file(path, publisher.local_addr()).map_err(|e| {
            anyhow::anyhow!("cannot write the address file {}: {e}", path.display())
        })?;
    }
    // The first word after "on" is the bound address: a stable line scripts may parse.
    eprintln!(
        "sttp publisher on {} serving {} demo signals at {} frames/s; watch it with: sttp subscribe {}",
        publisher.local_addr(),
        fleet.signals().len(),
        config.demo.rate,
        publisher.local_addr()
    );
    let interval = Duration::from_secs(config.stats_interval_secs.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut last_points = 0u64;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick(), if config.stats_interval_secs > 0 => {
                let ring = publisher.source();
                let published = ring.stats().points.load(Ordering::Relaxed);
                let subs = publisher.subscription_stats();
                let sent: u64 = subs.iter().map(|(_, s)| s.points).sum();
                let dropped: u64 = subs.iter().map(|(_, s)| s.dropped_queue_full).sum();
                let workers = publisher.worker_stats();
                let datagrams: u64 = workers.iter().map(|w| w.datagrams_sent).sum();
                let send_drops: u64 = workers.iter().map(|w| w.send_would_block + w.send_errors).sum();
                tracing::info!(
                    connections = publisher.stats().connections_open.load(Ordering::Relaxed),
                    published_per_s = (published - last_points) as f64 / interval.as_secs_f64(),
                    published_total = published,
                    points_sent_total = sent,
                    datagrams_sent_total = datagrams,
                    dropped_slow_subscriber = dropped,
                    dropped_udp_send = send_drops,
                    "summary"
                );
                last_points = published;
                if let Some(path) = &config.stats_file {
                    let report = sttp_control::stats_report::snapshot(&publisher);
                    if let Err(e) = sttp_control::stats_report::write_atomically(path, &report) {
                        tracing::warn!(file = %path.display(), error = %e, "cannot write the stats file");
                    }
                }
            }
        }
    }
    tracing::info!("shutting down");
    if let Some(path) = &args.address_file {
        let _ = std::fs::remove_file(path);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = generator.join();
    publisher.shutdown().await;
    Ok(())
}

/// Writes `addr` and a newline to `path` through a temporary file renamed over it, so a reader
/// polling for the file never sees it half written.
fn write_address_file(path: &std::path::Path, addr: std::net::SocketAddr) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path)
}
