//! `sttp serve` flags for the data plane; each overrides the `[dataplane]` table.

use clap::Args;
use std::path::PathBuf;
use sttp_control::config::ServeConfig;
use sttp_dataplane::io::BackendChoice;

/// Data-plane flags.
#[derive(Args, Debug, Default)]
pub(crate) struct ServeDataPlaneArgs {
    /// Link MTU; UDP datagrams are sized to fit it (default 1500).
    #[arg(long)]
    mtu: Option<usize>,
    /// UDP sender: auto (io_uring, else sendmmsg), io-uring or sendmmsg.
    #[arg(long, value_name = "auto|io-uring|sendmmsg")]
    io_backend: Option<BackendChoice>,
    /// Longest a point waits to share a packet, microseconds (default 1000).
    #[arg(long, value_name = "US")]
    flush_deadline_us: Option<u64>,
    /// Do not pin workers to cores.
    #[arg(long)]
    no_pin: bool,
    /// Do not use UDP GSO.
    #[arg(long)]
    no_gso: bool,
    /// Seconds between automatic data-channel key rotations (0 = on request only).
    #[arg(long, value_name = "SECS")]
    key_rotation_secs: Option<u64>,
    /// Write every statistic as JSON to FILE each stats interval.
    #[arg(long, value_name = "FILE")]
    stats_file: Option<PathBuf>,
    /// Seconds between summary log lines and stats-file updates.
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
}

impl ServeDataPlaneArgs {
    /// Applies the flags over the configuration.
    pub(crate) fn apply(&self, config: &mut ServeConfig) {
        let d = &mut config.dataplane;
        if let Some(m) = self.mtu {
            d.mtu = m;
        }
        if let Some(b) = self.io_backend {
            d.io_backend = b;
        }
        if let Some(us) = self.flush_deadline_us {
            d.flush_deadline_us = us;
        }
        if self.no_pin {
            d.pin_workers = false;
        }
        if self.no_gso {
            d.gso = false;
        }
        if let Some(s) = self.key_rotation_secs {
            d.key_rotation_secs = s;
        }
        if let Some(f) = &self.stats_file {
            config.stats_file = Some(f.clone());
        }
        if let Some(s) = self.stats_interval {
            config.stats_interval_secs = s;
        }
    }
}
