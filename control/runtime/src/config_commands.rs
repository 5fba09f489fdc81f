//! The `[commands]` table of `sttp serve`'s configuration: where expensive commands run and the
//! CPU each connection may spend on them ([`crate::server::command_pool`]).

use crate::server::CommandSettings;
use serde::Deserialize;
use std::time::Duration;

/// `[commands]`: the command pool and the per-connection CPU budget.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsConfig {
    /// Command pool threads; 0 runs commands on the connection tasks (no CPU isolation).
    pub threads: usize,
    /// CPU seconds a connection's commands may use in a burst (0 = no budget).
    pub cpu_burst_secs: f64,
    /// CPU seconds per second the budget refills at (0.1 = 10 % of one core).
    pub cpu_rate: f64,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        let d = CommandSettings::default();
        Self {
            threads: d.threads,
            cpu_burst_secs: d.cpu_burst.as_secs_f64(),
            cpu_rate: d.cpu_rate,
        }
    }
}

impl CommandsConfig {
    /// The publisher's command settings, or which value is out of range.
    pub fn to_settings(&self) -> anyhow::Result<CommandSettings> {
        anyhow::ensure!(
            self.threads <= 64,
            "commands.threads must be at most 64, got {}",
            self.threads
        );
        anyhow::ensure!(
            (0.0..=3600.0).contains(&self.cpu_burst_secs),
            "commands.cpu_burst_secs must be in [0, 3600], got {}",
            self.cpu_burst_secs
        );
        anyhow::ensure!(
            (0.0..=64.0).contains(&self.cpu_rate),
            "commands.cpu_rate must be in [0, 64] CPU seconds per second, got {}",
            self.cpu_rate
        );
        Ok(CommandSettings {
            threads: self.threads,
            cpu_burst: Duration::from_secs_f64(self.cpu_burst_secs),
            cpu_rate: self.cpu_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_values_are_checked() {
        assert_eq!(
            CommandsConfig::default().to_settings().unwrap(),
            CommandSettings::default()
        );
        let c: CommandsConfig = toml::from_str("threads = 0\ncpu_burst_secs = 0.5\n").unwrap();
        let s = c.to_settings().unwrap();
        assert_eq!((s.threads, s.cpu_burst), (0, Duration::from_millis(500)));
        assert!(toml::from_str::<CommandsConfig>("thread = 1").is_err());
        let bad = CommandsConfig {
            cpu_rate: -1.0,
            ..CommandsConfig::default()
        };
        assert!(bad
            .to_settings()
            .unwrap_err()
            .to_string()
            .contains("cpu_rate"));
    }
}
