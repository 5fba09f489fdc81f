//! Hostile-input limits of the publisher: per-source connection limits, the failure throttle,
//! handshake and first-command timeouts and the per-session memory budget (test-plan T7, T14).
//!
//! The command channel is open to anyone who can reach the port, so every resource a peer can
//! make the publisher hold is bounded here or in [`super::budget`]:
//!
//! * **connections**: `max_connections` in total (refused with Failed(0x00), wire.md §1.1) and
//!   [`Limits::max_per_source`] per source IP, so one host cannot take every slot;
//! * **time**: a connection must finish the transport handshake within
//!   [`Limits::handshake_timeout`] and deliver its first complete command frame within
//!   [`Limits::first_command_timeout`] (slowloris, connect-and-idle, half-open TLS);
//! * **repeat offenders**: [`Limits::failure_threshold`] failures (protocol errors, timeouts,
//!   refused handshakes) from one IP within [`Limits::failure_window`] refuse that IP outright
//!   for [`Limits::throttle_cooldown`], with one alert per incident, not one per connection;
//! * **memory**: [`Limits::session_memory_budget`] bytes per session for queued outgoing frames
//!   plus buffered input (the first frame is further capped at 8 KiB by the frame decoder,
//!   wire.md §1 size limits);
//! * **dead peers**: TCP keep-alive, TCP_USER_TIMEOUT and the writer's no-progress check
//!   ([`Limits::send_stall_timeout`]) close a session whose peer stopped acknowledging or
//!   reading within a bounded time (docs/liveness.md).
//!
//! [`SourceTracker`] is sans-clock: every call that needs the time takes `now`, so the rules
//! are unit-tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default concurrent connections per source IP.
pub const DEFAULT_MAX_PER_SOURCE: usize = 32;
/// Default time to complete the transport handshake (plain TCP: immediate; TLS: the handshake).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time from transport-ready to the first complete command frame.
pub const DEFAULT_FIRST_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Default failures from one IP that start a throttle (test-plan T7: e.g. 10 per minute).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 10;
/// Default window the failures are counted in.
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Default time a throttled IP is refused.
pub const DEFAULT_THROTTLE_COOLDOWN: Duration = Duration::from_secs(60);
/// Default bytes one session may hold in queued output plus buffered input.
pub const DEFAULT_SESSION_MEMORY_BUDGET: usize = 8 * 1024 * 1024;
/// Default idle time of an accepted connection before the first TCP keep-alive probe
/// (docs/liveness.md).
pub const DEFAULT_TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Default time between TCP keep-alive probes.
pub const DEFAULT_TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Default unanswered keep-alive probes after which the kernel drops the connection.
pub const DEFAULT_TCP_KEEPALIVE_PROBES: u32 = 3;
/// Default TCP_USER_TIMEOUT: how long sent data may stay unacknowledged (and a zero window
/// unopened) before the kernel drops the connection.
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time the writer may wait on queued output without a single byte written before the
/// session is closed as a dead peer ([`super::writer`]).
pub const DEFAULT_SEND_STALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Sources tracked at most; beyond this, idle entries are pruned at once and, if that is not
/// enough, failure history is forgotten (open-connection counts are always kept).
const MAX_TRACKED_SOURCES: usize = 65_536;

/// The publisher's hostile-input limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Concurrent connections from one source IP (the loopback address included).
    pub max_per_source: usize,
    /// Time a connection has to complete the transport handshake.
    pub handshake_timeout: Duration,
    /// Time from transport-ready to the first complete command frame.
    pub first_command_timeout: Duration,
    /// Failures from one IP within `failure_window` that throttle it; 0 turns throttling off.
    pub failure_threshold: u32,
    /// Window the failures are counted in.
    pub failure_window: Duration,
    /// How long a throttled IP is refused.
    pub throttle_cooldown: Duration,
    /// Bytes one session may hold: queued outgoing frames plus buffered input.
    pub session_memory_budget: usize,
    /// Idle time before the first TCP keep-alive probe on an accepted connection; None leaves
    /// keep-alive off (docs/liveness.md).
    pub tcp_keepalive_idle: Option<Duration>,
    /// Time between keep-alive probes.
    pub tcp_keepalive_interval: Duration,
    /// Unanswered keep-alive probes after which the kernel drops the connection.
    pub tcp_keepalive_probes: u32,
    /// TCP_USER_TIMEOUT of accepted connections; None keeps the kernel's retransmission limit
    /// (`tcp_retries2`, about 15 minutes).
    pub tcp_user_timeout: Option<Duration>,
    /// Queued output with no byte written for this long closes the session as a dead peer;
    /// None turns the check off.
    pub send_stall_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_per_source: DEFAULT_MAX_PER_SOURCE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            first_command_timeout: DEFAULT_FIRST_COMMAND_TIMEOUT,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            failure_window: DEFAULT_FAILURE_WINDOW,
            throttle_cooldown: DEFAULT_THROTTLE_COOLDOWN,
            session_memory_budget: DEFAULT_SESSION_MEMORY_BUDGET,
            tcp_keepalive_idle: Some(DEFAULT_TCP_KEEPALIVE_IDLE),
            tcp_keepalive_interval: DEFAULT_TCP_KEEPALIVE_INTERVAL,
            tcp_keepalive_probes: DEFAULT_TCP_KEEPALIVE_PROBES,
            tcp_user_timeout: Some(DEFAULT_TCP_USER_TIMEOUT),
            send_stall_timeout: Some(DEFAULT_SEND_STALL_TIMEOUT),
        }
    }
}

/// Why a connection was refused before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source already has `max_per_source` connections open.
    TooManyFromSource { open: usize },
    /// The source failed too often and is in its cool-down.
    Throttled { remaining: Duration },
}

/// The outcome of recording a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; the source is not (newly) throttled.
    Counted,
    /// This failure started a throttle incident: raise one alert.
    ThrottleStarted { failures: u32 },
}

/// Per-source state: open connections, recent failures, throttle deadline.
#[derive(Debug, Default)]
struct Source {
    open: usize,
    /// Times of recent failures, oldest first; at most `failure_threshold` entries.
    failures: VecDeque<Instant>,
    throttled_until: Option<Instant>,
}

impl Source {
    fn is_idle(&self, now: Instant, window: Duration) -> bool {
        self.open == 0
            && self.throttled_until.is_none_or(|t| t <= now)
            && self
                .failures
                .back()
                .is_none_or(|last| now.saturating_duration_since(*last) >= window)
    }
}

/// Tracks every source IP with open connections, recent failures or an active throttle.
///
/// Memory: one entry per such IP, each holding at most `failure_threshold` timestamps; idle
/// entries are dropped when their last connection closes or at the next prune.
#[derive(Debug)]
pub struct SourceTracker {
    limits: Limits,
    state: Mutex<TrackerState>,
}

#[derive(Debug)]
struct TrackerState {
    sources: HashMap<IpAddr, Source>,
    last_prune: Option<Instant>,
}

impl SourceTracker {
    /// A tracker enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(TrackerState {
                sources: HashMap::new(),
                last_prune: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip` or says why not. The returned guard holds the source's
    /// slot until it is dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<SourceGuard, Refusal> {
        let mut state = self.lock();
        self.prune_if_due(&mut state, now);
        let source = state.sources.entry(ip).or_default();
        if let Some(until) = source.throttled_until {
            if until > now {
                return Err(Refusal::Throttled {
                    remaining: until - now,
                });
            }
            source.throttled_until = None;
        }
        if source.open >= self.limits.max_per_source {
            return Err(Refusal::TooManyFromSource { open: source.open });
        }
        source.open += 1;
        Ok(SourceGuard {
            tracker: self.clone(),
            ip,
        })
    }

    /// Records a failure (protocol error, timeout, refused handshake) from `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> FailureOutcome {
        let threshold = self.limits.failure_threshold;
        if threshold == 0 {
            return FailureOutcome::Counted;
        }
        let window = self.limits.failure_window;
        let mut state = self.lock();
        self.prune_if_due(&mut state, now);
        let source = state.sources.entry(ip).or_default();
        if source.throttled_until.is_some_and(|t| t > now) {
            // Connections admitted before the throttle began may still fail: same incident.
            return FailureOutcome::Counted;
        }
        while source
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            source.failures.pop_front();
        }
        source.failures.push_back(now);
        if source.failures.len() >= threshold as usize {
            source.failures.clear();
            source.throttled_until = Some(now + self.limits.throttle_cooldown);
            return FailureOutcome::ThrottleStarted {
                failures: threshold,
            };
        }
        FailureOutcome::Counted
    }

    /// Source IPs tracked now (open connections, recent failures or throttled).
    pub fn tracked(&self) -> usize {
        self.lock().sources.len()
    }

    /// Connections open from `ip` now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock().sources.get(&ip).map_or(0, |s| s.open)
    }

    fn prune_if_due(&self, state: &mut TrackerState, now: Instant) {
        let due = state.sources.len() >= MAX_TRACKED_SOURCES
            || state
                .last_prune
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if !due {
            return;
        }
        state.last_prune = Some(now);
        let window = self.limits.failure_window;
        state.sources.retain(|_, s| !s.is_idle(now, window));
        if state.sources.len() >= MAX_TRACKED_SOURCES {
            // A flood from more addresses than we can remember: keep the connection counts
            // (needed for correctness), forget the failure history of the rest.
            state.sources.retain(|_, s| s.open > 0);
        }
    }

    fn release(&self, ip: IpAddr) {
        let mut state = self.lock();
        let window = self.limits.failure_window;
        let now = Instant::now();
        if let Some(source) = state.sources.get_mut(&ip) {
            source.open = source.open.saturating_sub(1);
            if source.is_idle(now, window) {
                state.sources.remove(&ip);
            }
        }
    }
}

/// A source's connection slot; released on drop.
#[derive(Debug)]
pub struct SourceGuard {
    tracker: Arc<SourceTracker>,
    ip: IpAddr,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        self.tracker.release(self.ip);
    }
}

/// A misbehaviour that closes a connection and counts towards the source's throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// A malformed or refused command stream (protocol_closes).
    Protocol,
    /// A frame longer than allowed (first frame > 8 KiB, later > the command limit).
    Oversized,
    /// No complete first command in time.
    FirstCommandTimeout,
    /// The transport handshake did not finish in time.
    HandshakeTimeout,
    /// The transport refused the peer (e.g. a failed TLS handshake).
    TransportRefused,
    /// The session exceeded its memory budget.
    MemoryBudget,
    /// The connection's commands used more CPU than its budget.
    CpuBudget,
}

impl super::Shared {
    /// Counts `fault` and records it against the peer's address; raises one alert when it
    /// starts a throttle incident.
    pub(super) fn peer_fault(&self, peer: SocketAddr, fault: Fault) {
        let stats = &self.stats;
        match fault {
            Fault::Protocol => stats.protocol_closes.fetch_add(1, Relaxed),
            Fault::Oversized => {
                stats.protocol_closes.fetch_add(1, Relaxed);
                stats.oversized_frames.fetch_add(1, Relaxed)
            }
            Fault::FirstCommandTimeout => stats.first_command_timeouts.fetch_add(1, Relaxed),
            Fault::HandshakeTimeout => stats.handshake_timeouts.fetch_add(1, Relaxed),
            Fault::TransportRefused => stats.transport_refusals.fetch_add(1, Relaxed),
            Fault::MemoryBudget => stats.memory_budget_closes.fetch_add(1, Relaxed),
            Fault::CpuBudget => stats.cpu_budget_closes.fetch_add(1, Relaxed),
        };
        if let FailureOutcome::ThrottleStarted { failures } =
            self.sources.record_failure(peer.ip(), Instant::now())
        {
            stats.throttle_incidents.fetch_add(1, Relaxed);
            let limits = &self.config.limits;
            tracing::warn!(
                source = %peer.ip(),
                failures,
                window_secs = limits.failure_window.as_secs_f64(),
                cooldown_secs = limits.throttle_cooldown.as_secs_f64(),
                last = ?fault,
                "security alert: repeated failures from one source; refusing it for the cool-down"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn limits() -> Limits {
        Limits {
            max_per_source: 2,
            failure_threshold: 3,
            failure_window: Duration::from_secs(10),
            throttle_cooldown: Duration::from_secs(30),
            ..Limits::default()
        }
    }

    #[test]
    fn per_source_limit_counts_each_address_separately_and_frees_on_drop() {
        let t = SourceTracker::new(limits());
        let now = Instant::now();
        let a1 = t.admit(ip(1), now).unwrap();
        let _a2 = t.admit(ip(1), now).unwrap();
        assert_eq!(
            t.admit(ip(1), now).unwrap_err(),
            Refusal::TooManyFromSource { open: 2 }
        );
        let _b = t.admit(ip(2), now).unwrap();
        assert_eq!(t.open_from(ip(1)), 2);
        drop(a1);
        assert_eq!(t.open_from(ip(1)), 1);
        let _a3 = t.admit(ip(1), now).unwrap();
    }

    #[test]
    fn failures_within_the_window_throttle_once_until_the_cool_down_ends() {
        let t = SourceTracker::new(limits());
        let t0 = Instant::now();
        assert_eq!(t.record_failure(ip(1), t0), FailureOutcome::Counted);
        assert_eq!(
            t.record_failure(ip(1), t0 + Duration::from_secs(1)),
            FailureOutcome::Counted
        );
        assert_eq!(
            t.record_failure(ip(1), t0 + Duration::from_secs(2)),
            FailureOutcome::ThrottleStarted { failures: 3 }
        );
        // Same incident: later failures raise no new alert.
        assert_eq!(
            t.record_failure(ip(1), t0 + Duration::from_secs(3)),
            FailureOutcome::Counted
        );
        let during = t0 + Duration::from_secs(12);
        assert_eq!(
            t.admit(ip(1), during).unwrap_err(),
            Refusal::Throttled {
                remaining: Duration::from_secs(20)
            }
        );
        assert!(t.admit(ip(2), during).is_ok(), "other sources unaffected");
        let after = t0 + Duration::from_secs(33);
        assert!(t.admit(ip(1), after).is_ok(), "cool-down over");
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_throttle() {
        let t = SourceTracker::new(limits());
        let t0 = Instant::now();
        for k in 0..20 {
            assert_eq!(
                t.record_failure(ip(1), t0 + Duration::from_secs(6 * k)),
                FailureOutcome::Counted,
                "failure {k}"
            );
        }
        let off = SourceTracker::new(Limits {
            failure_threshold: 0,
            ..limits()
        });
        for _ in 0..100 {
            assert_eq!(off.record_failure(ip(1), t0), FailureOutcome::Counted);
        }
        assert!(off.admit(ip(1), t0).is_ok());
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let t = SourceTracker::new(limits());
        let t0 = Instant::now();
        let g = t.admit(ip(1), t0).unwrap();
        drop(g);
        assert_eq!(
            t.tracked(),
            0,
            "no failures: dropped with its last connection"
        );
        t.record_failure(ip(2), t0);
        assert_eq!(t.tracked(), 1);
        // The next call after the window prunes it.
        let later = t0 + Duration::from_secs(11);
        let _g = t.admit(ip(3), later).unwrap();
        assert_eq!(
            t.tracked(),
            1,
            "only the source with an open connection remains"
        );
    }
}
