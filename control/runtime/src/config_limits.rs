//! The `[limits]` table of `sttp serve`'s configuration: the publisher's hostile-input limits
//! ([`crate::server::limits`]) in file form, times in seconds; the dead-peer settings are
//! described in docs/liveness.md.

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
    /// Seconds idle before the first TCP keep-alive probe (whole seconds; 0 = keep-alive off).
    pub tcp_keepalive_idle_secs: f64,
    /// Seconds between keep-alive probes (whole seconds).
    pub tcp_keepalive_interval_secs: f64,
    /// Unanswered keep-alive probes that drop the connection.
    pub tcp_keepalive_probes: u32,
    /// TCP_USER_TIMEOUT in seconds: sent data unacknowledged this long drops the connection
    /// (0 = the kernel's default).
    pub tcp_user_timeout_secs: f64,
    /// Seconds queued output may wait with no byte written before the session is closed as a
    /// dead peer (0 = off).
    pub send_stall_timeout_secs: f64,
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
            tcp_keepalive_idle_secs: d.tcp_keepalive_idle.map_or(0.0, |t| t.as_secs_f64()),
            tcp_keepalive_interval_secs: d.tcp_keepalive_interval.as_secs_f64(),
            tcp_keepalive_probes: d.tcp_keepalive_probes,
            tcp_user_timeout_secs: d.tcp_user_timeout.map_or(0.0, |t| t.as_secs_f64()),
            send_stall_timeout_secs: d.send_stall_timeout.map_or(0.0, |t| t.as_secs_f64()),
        }
    }
}

/// The kernel's range for TCP_KEEPIDLE and TCP_KEEPINTVL (whole seconds, 1..=32767).
const KEEPALIVE_MAX_SECS: f64 = 32_767.0;
/// The kernel's limit on TCP_KEEPCNT.
const KEEPALIVE_MAX_PROBES: u32 = 127;

/// A keep-alive time: whole seconds in the kernel's range.
fn keepalive_secs(name: &str, value: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.fract() == 0.0 && (1.0..=KEEPALIVE_MAX_SECS).contains(&value),
        "limits.{name} must be a whole number of seconds in [1, 32767], got {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

/// A dead-peer time where 0 means off; otherwise at least a second (shorter would close live
/// subscribers on any hiccup of the link) and at most a day.
fn secs_or_off(name: &str, value: f64) -> anyhow::Result<Option<Duration>> {
    if value == 0.0 {
        return Ok(None);
    }
    anyhow::ensure!(
        (1.0..=86_400.0).contains(&value),
        "limits.{name} must be 0 (off) or in [1, 86400] seconds, got {value}"
    );
    Ok(Some(Duration::from_secs_f64(value)))
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
        anyhow::ensure!(
            (1..=KEEPALIVE_MAX_PROBES).contains(&self.tcp_keepalive_probes),
            "limits.tcp_keepalive_probes must be in [1, 127], got {}",
            self.tcp_keepalive_probes
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
            tcp_keepalive_idle: if self.tcp_keepalive_idle_secs == 0.0 {
                None
            } else {
                Some(keepalive_secs(
                    "tcp_keepalive_idle_secs",
                    self.tcp_keepalive_idle_secs,
                )?)
            },
            tcp_keepalive_interval: keepalive_secs(
                "tcp_keepalive_interval_secs",
                self.tcp_keepalive_interval_secs,
            )?,
            tcp_keepalive_probes: self.tcp_keepalive_probes,
            tcp_user_timeout: secs_or_off("tcp_user_timeout_secs", self.tcp_user_timeout_secs)?,
            send_stall_timeout: secs_or_off(
                "send_stall_timeout_secs",
                self.send_stall_timeout_secs,
            )?,
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

    #[test]
    fn liveness_settings_parse_turn_off_with_zero_and_are_range_checked() {
        let d = Limits::default();
        assert_eq!(d.tcp_keepalive_idle, Some(Duration::from_secs(10)));
        assert_eq!(d.tcp_user_timeout, Some(Duration::from_secs(20)));
        assert_eq!(d.send_stall_timeout, Some(Duration::from_secs(20)));
        let c: LimitsConfig = toml::from_str(
            "tcp_keepalive_idle_secs = 0\ntcp_user_timeout_secs = 0\nsend_stall_timeout_secs = 0\n",
        )
        .unwrap();
        let off = c.to_limits().unwrap();
        assert_eq!(
            (
                off.tcp_keepalive_idle,
                off.tcp_user_timeout,
                off.send_stall_timeout
            ),
            (None, None, None)
        );
        let c: LimitsConfig = toml::from_str(
            "tcp_keepalive_idle_secs = 30\ntcp_keepalive_interval_secs = 2\n\
             tcp_keepalive_probes = 5\ntcp_user_timeout_secs = 7.5\nsend_stall_timeout_secs = 3\n",
        )
        .unwrap();
        let l = c.to_limits().unwrap();
        assert_eq!(l.tcp_keepalive_idle, Some(Duration::from_secs(30)));
        assert_eq!(l.tcp_keepalive_interval, Duration::from_secs(2));
        assert_eq!(l.tcp_keepalive_probes, 5);
        assert_eq!(l.tcp_user_timeout, Some(Duration::from_millis(7500)));
        assert_eq!(l.send_stall_timeout, Some(Duration::from_secs(3)));
        assert!(toml::from_str::<LimitsConfig>("tcp_keepalive_secs = 4").is_err());
        let refused = |text: &str, name: &str| {
            let c: LimitsConfig = toml::from_str(text).unwrap();
            let e = c.to_limits().unwrap_err().to_string();
            assert!(e.contains(name), "{text}: {e}");
        };
        refused("tcp_keepalive_idle_secs = 1.5", "tcp_keepalive_idle_secs");
        refused("tcp_keepalive_idle_secs = 40000", "tcp_keepalive_idle_secs");
        refused(
            "tcp_keepalive_interval_secs = 0",
            "tcp_keepalive_interval_secs",
        );
        refused("tcp_keepalive_probes = 0", "tcp_keepalive_probes");
        refused("tcp_keepalive_probes = 128", "tcp_keepalive_probes");
        refused("tcp_user_timeout_secs = -1", "tcp_user_timeout_secs");
        refused("tcp_user_timeout_secs = 100000", "tcp_user_timeout_secs");
        refused(
            "send_stall_timeout_secs = 0.0001",
            "send_stall_timeout_secs",
        );
        refused("send_stall_timeout_secs = nan", "send_stall_timeout_secs");
    }
}
