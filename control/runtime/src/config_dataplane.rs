//! The `[dataplane]` table of `sttp serve`'s configuration: how the workers send (io_uring or
//! sendmmsg, GSO, socket buffer), datagram sizing (MTU), the flush deadline, pinning, and the
//! key-rotation period of authenticated UDP data channels.

use crate::server::LegacyCipherKeys;
use serde::Deserialize;
use std::time::Duration;
use sttp_dataplane::engine::{MAX_MTU, MIN_MTU};
use sttp_dataplane::io::{BackendChoice, BackendOptions};
use sttp_dataplane::EngineConfig;

/// `[dataplane]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataPlaneConfig {
    /// `auto` (io_uring where the kernel allows it, else sendmmsg), `io-uring` or `sendmmsg`.
    pub io_backend: BackendChoice,
    /// Use UDP generic segmentation offload where the kernel has it.
    pub gso: bool,
    /// Send buffer of each worker's UDP socket, bytes.
    pub send_buffer: usize,
    /// Link MTU: datagrams are sized to fit it without IP fragmentation (1500 = Ethernet).
    /// Larger values trade some fragmentation for fewer datagrams.
    pub mtu: usize,
    /// Longest a point waits for more points to share its packet, microseconds.
    pub flush_deadline_us: u64,
    /// Pin each worker to its own core.
    pub pin_workers: bool,
    /// Batches each worker's source queue holds.
    pub queue_depth: usize,
    /// Seconds between automatic key rotations on authenticated UDP data channels (0 = only
    /// when the subscriber asks).
    pub key_rotation_secs: u64,
    /// When stock subscribers' UDP data channels get GSF-compatible AES-256-CBC keys:
    /// `when-tls` (default), `off`, or `always` (keys in the clear on plain TCP: testing only).
    pub legacy_cipher_keys: LegacyCipherKeys,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        let backend = BackendOptions::default();
        Self {
            io_backend: backend.choice,
            gso: backend.gso,
            send_buffer: backend.send_buffer,
            mtu: engine.mtu,
            flush_deadline_us: engine.flush_deadline.as_micros() as u64,
            pin_workers: true,
            queue_depth: engine.queue_depth,
            key_rotation_secs: 600,
            legacy_cipher_keys: LegacyCipherKeys::default(),
        }
    }
}

impl DataPlaneConfig {
    /// Checks the values and builds the engine configuration for `workers` workers.
    pub fn engine(&self, workers: usize) -> anyhow::Result<EngineConfig> {
        anyhow::ensure!(
            (MIN_MTU..=MAX_MTU).contains(&self.mtu),
            "dataplane.mtu must be in {MIN_MTU}..={MAX_MTU} bytes, got {}",
            self.mtu
        );
        anyhow::ensure!(
            self.flush_deadline_us <= 1_000_000,
            "dataplane.flush_deadline_us must be at most 1000000 (1 s), got {}",
            self.flush_deadline_us
        );
        anyhow::ensure!(
            self.queue_depth >= 1,
            "dataplane.queue_depth must be at least 1"
        );
        Ok(EngineConfig {
            workers,
            queue_depth: self.queue_depth,
            backend: BackendOptions {
                choice: self.io_backend,
                gso: self.gso,
                send_buffer: self.send_buffer,
            },
            pin_workers: self.pin_workers,
            mtu: self.mtu,
            flush_deadline: Duration::from_micros(self.flush_deadline_us),
        })
    }

    /// The automatic key-rotation period.
    pub fn key_rotation(&self) -> Option<Duration> {
        (self.key_rotation_secs > 0).then(|| Duration::from_secs(self.key_rotation_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_the_table() {
        let c: DataPlaneConfig =
            toml::from_str("io_backend = \"sendmmsg\"\nmtu = 9000\nflush_deadline_us = 500\n")
                .unwrap();
        assert_eq!(c.io_backend, BackendChoice::Sendmmsg);
        let e = c.engine(2).unwrap();
        assert_eq!(e.mtu, 9000);
        assert_eq!(e.flush_deadline, Duration::from_micros(500));
        assert_eq!(e.workers, 2);
        let bad = DataPlaneConfig {
            mtu: 500,
            ..DataPlaneConfig::default()
        };
        assert!(bad
            .engine(1)
            .unwrap_err()
            .to_string()
            .contains("dataplane.mtu"));
        assert!(toml::from_str::<DataPlaneConfig>("io_backend = \"dpdk\"").is_err());
        assert!(toml::from_str::<DataPlaneConfig>("mtu_bytes = 1").is_err());
    }
}
