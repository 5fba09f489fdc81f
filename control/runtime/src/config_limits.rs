//! The `[limits]` table of `sttp serve`'s configuration: the publisher's hostile-input limits
//! ([`crate::server::limits`]) in file form, times in seconds.

use crate::server::limits::Limits;
use serde::Deserialize;
use std::time::Duration;

/// `[limits]`: per-source connection limits, the failure throttle, timeouts, memory budget.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Concurrent connections from one source IP.
    pub max_per_source: usize,
    /// Seconds to complete the transport (TLS) handshake.
    pub handshake_timeout_secs: f64,
    /// Seconds from connect to the first complete command frame.
    pub first_command_timeout_secs: f64,
    /// Failures from one IP within `failure_window_secs` that throttle it (0 = never).
    pub failure_threshold: u32,
    /// Window the failures are counted in, seconds.
    pub failure_window_secs: f64,
    /// Seconds a throttled IP is refused.
    pub throttle_cooldown_secs: f64,
    /// Bytes one session may hold in queued output plus buffered input.
    pub session_memory_budget: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = Limits::default();
        Self {
            max_per_source: d.max_per_source,
            handshake_timeout_secs: d.handshake_timeout.as_secs_f64(),
            first_command_timeout_secs: d.first_command_timeout.as_secs_f64(),
            failure_threshold: d.failure_threshold,
            failure_window_secs: d.failure_window.as_secs_f64(),
            throttle_cooldown_secs: d.throttle_cooldown.as_secs_f64(),
            session_memory_budget: d.session_memory_budget,
        }
    }
}

/// Seconds in a limit must be positive and below a day (a typo guard).
fn secs(name: &str, value: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value > 0.0 && value <= 86_400.0,
        "limits.{name} must be in (0, 86400] seconds, got {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

impl LimitsConfig {
    /// The publisher's limits, or which value is out of range.
    pub fn to_limits(&self) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            self.max_per_source >= 1,
            "limits.max_per_source must be at least 1"
        );
        anyhow::ensure!(
            self.session_memory_budget >= 64 * 1024,
            "limits.session_memory_budget must be at least 65536 bytes (one data packet plus a command)"
        );
        Ok(Limits {
            max_per_source: self.max_per_source,
            handshake_timeout: secs("handshake_timeout_secs", self.handshake_timeout_secs)?,
            first_command_timeout: secs(
                "first_command_timeout_secs",
                self.first_command_timeout_secs,
            )?,
            failure_threshold: self.failure_threshold,
            failure_window: secs("failure_window_secs", self.failure_window_secs)?,
            throttle_cooldown: secs("throttle_cooldown_secs", self.throttle_cooldown_secs)?,
            session_memory_budget: self.session_memory_budget,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::limits;

    #[test]
    fn defaults_round_trip_and_values_are_checked() {
        assert_eq!(
            LimitsConfig::default().to_limits().unwrap(),
            Limits::default()
        );
        let c: LimitsConfig =
            toml::from_str("max_per_source = 4\nfirst_command_timeout_secs = 2.5\n").unwrap();
        let l = c.to_limits().unwrap();
        assert_eq!(l.max_per_source, 4);
        assert_eq!(l.first_command_timeout, Duration::from_millis(2500));
        assert_eq!(l.handshake_timeout, limits::DEFAULT_HANDSHAKE_TIMEOUT);
        assert!(toml::from_str::<LimitsConfig>("max_per_sauce = 4").is_err());
        let zero = LimitsConfig {
            handshake_timeout_secs: 0.0,
            ..LimitsConfig::default()
        };
        let e = zero.to_limits().unwrap_err().to_string();
        assert!(e.contains("handshake_timeout_secs"), "{e}");
    }
}
