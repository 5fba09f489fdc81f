//! `sttp serve` configuration: command-line flags over a TOML file over defaults.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// Default plain-TCP STTP port (GSF convention, wire.md §1).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7165";

/// Everything `sttp serve` can be told in its config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Connections served at once; further ones are refused with a Failed(0x00).
    pub max_connections: usize,
    /// Data-plane worker threads.
    pub workers: usize,
    /// Publisher node ID (random at each start when absent).
    pub node_id: Option<uuid::Uuid>,
    /// Name used in messages and metadata.
    pub name: String,
    /// Frames queued per subscriber before its data is dropped (slow-subscriber policy).
    pub subscriber_queue_frames: usize,
    /// Seconds between summary log lines (0 = none).
    pub stats_interval_secs: u64,
    /// The embedded demo source.
    pub demo: DemoConfig,
    /// Hostile-input limits (`[limits]`, see [`crate::config_limits`]).
    pub limits: crate::config_limits::LimitsConfig,
    /// The command pool and per-connection CPU budget (`[commands]`, [`crate::config_commands`]).
    pub commands: crate::config_commands::CommandsConfig,
    /// TLS on the command channel (`[tls]`, see [`crate::config_tls`]).
    pub tls: crate::config_tls::TlsConfig,
    /// Workers, sending and datagram sizing (`[dataplane]`, see [`crate::config_dataplane`]).
    pub dataplane: crate::config_dataplane::DataPlaneConfig,
    /// Write every publisher statistic as JSON to this file each stats interval.
    pub stats_file: Option<std::path::PathBuf>,
    /// Subscriber access policy file (README "Access control"); none = access control off.
    pub access_file: Option<std::path::PathBuf>,
}

/// The synthetic PMU fleet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Serve the demo source.
    pub enabled: bool,
    /// Total signals (15 per PMU; the last PMU may carry fewer).
    pub signals: usize,
    /// Frames per second.
    pub rate: f64,
    /// Seed of the noise generator (fixed so runs are reproducible).
    pub seed: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7165))),
            max_connections: 1000,
            // One data-plane worker per core.
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            node_id: None,
            name: "sttp".into(),
            subscriber_queue_frames: 4096,
            stats_interval_secs: 10,
            demo: DemoConfig::default(),
            limits: crate::config_limits::LimitsConfig::default(),
            commands: crate::config_commands::CommandsConfig::default(),
            tls: crate::config_tls::TlsConfig::default(),
            dataplane: crate::config_dataplane::DataPlaneConfig::default(),
            stats_file: None,
            access_file: None,
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            signals: 150,
            rate: 30.0,
            seed: 2664,
        }
    }
}

impl ServeConfig {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    /// Checks values a typo could make absurd.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.workers >= 1, "workers must be at least 1");
        anyhow::ensure!(
            self.max_connections >= 1,
            "max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.subscriber_queue_frames >= 16,
            "subscriber_queue_frames must be at least 16"
        );
        if self.demo.enabled {
            anyhow::ensure!(self.demo.signals >= 1, "demo.signals must be at least 1");
            anyhow::ensure!(
                self.demo.rate > 0.0 && self.demo.rate <= 1_000_000.0,
                "demo.rate must be in (0, 1000000] frames per second"
            );
        }
        self.limits.to_limits()?;
        self.dataplane.engine(self.workers)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_rejects_unknown_keys() {
        let c: ServeConfig = toml::from_str(
            "listen = \"0.0.0.0:7175\"\nworkers = 2\n[demo]\nsignals = 30\nrate = 60.0\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7175);
        assert_eq!(c.demo.signals, 30);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<ServeConfig>("lisen = \"x\"").is_err());
        let bad = ServeConfig {
            workers: 0,
            ..ServeConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
