//! Why a publisher connection ended or was refused, as types, and one counter per reason.
//!
//! Every connection the accept loop takes ends in exactly one [`CloseReason`]: it is logged once
//! (one `connection closed` line, with the reason's label and detail) and counted once in
//! [`CloseCounters`], which the stats file and [`super::Publisher::stats`] expose. Connections
//! refused before a session starts are counted by [`RefusalKind`] the same way, so the log and
//! the counters always tell the same story (`tests/tests/hostile_commands.rs` compares them).

use core::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Why a served connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The publisher is shutting down.
    Shutdown,
    /// The subscriber closed its side (read returned 0).
    PeerClosed,
    /// Reading failed (e.g. connection reset).
    ReadFailed(String),
    /// Writing failed.
    WriteFailed(String),
    /// No DefineOperationalModes within the handshake time.
    NoModes(Duration),
    /// No complete first command frame within the limit.
    FirstCommandTimeout(Duration),
    /// A malformed command stream (the framer's reason).
    Protocol(String),
    /// A command frame above the size limit.
    Oversized(String),
    /// The session itself ended the connection (e.g. an unsupported protocol version).
    Session(String),
    /// Queued output plus buffered input passed the session memory budget.
    MemoryBudget {
        /// Bytes buffered or queued when the budget was checked.
        held: usize,
        /// The budget.
        limit: usize,
    },
    /// A control response could not be queued within the control send timeout.
    SlowConsumer,
    /// The peer's commands used more CPU time than its budget allows.
    CpuBudget {
        /// CPU time used by the commands of this connection.
        used: Duration,
    },
    /// The command pool is gone (the publisher is stopping).
    CommandPoolClosed,
    /// Access control refused the peer or its catalog.
    AccessDenied(String),
    /// The peer stopped taking data: no progress on the send queue, or the kernel gave up.
    DeadPeer(String),
    /// The transport (TLS) refused the peer.
    TransportRefused(String),
    /// The transport handshake did not finish in time.
    HandshakeTimeout(Duration),
}

/// The number of [`CloseReason`] kinds (the length of [`CloseReason::LABELS`]).
const KINDS: usize = 17;

impl CloseReason {
    /// Every reason's label, in [`CloseReason::index`] order; the stats file's keys.
    pub const LABELS: [&'static str; KINDS] = [
        "shutdown",
        "peer_closed",
        "read_failed",
        "write_failed",
        "no_modes",
        "first_command_timeout",
        "protocol",
        "oversized",
        "session",
        "memory_budget",
        "slow_consumer",
        "cpu_budget",
        "command_pool_closed",
        "access_denied",
        "dead_peer",
        "transport_refused",
        "handshake_timeout",
    ];

    /// The position of this kind in [`CloseReason::LABELS`].
    pub fn index(&self) -> usize {
        match self {
            Self::Shutdown => 0,
            Self::PeerClosed => 1,
            Self::ReadFailed(_) => 2,
            Self::WriteFailed(_) => 3,
            Self::NoModes(_) => 4,
            Self::FirstCommandTimeout(_) => 5,
            Self::Protocol(_) => 6,
            Self::Oversized(_) => 7,
            Self::Session(_) => 8,
            Self::MemoryBudget { .. } => 9,
            Self::SlowConsumer => 10,
            Self::CpuBudget { .. } => 11,
            Self::CommandPoolClosed => 12,
            Self::AccessDenied(_) => 13,
            Self::DeadPeer(_) => 14,
            Self::TransportRefused(_) => 15,
            Self::HandshakeTimeout(_) => 16,
        }
    }

    /// A short snake_case name of the kind, for logs and counters.
    pub fn label(&self) -> &'static str {
        Self::LABELS.get(self.index()).copied().unwrap_or("unknown")
    }

    /// True when the peer misbehaved (as opposed to closing, failing, dying or being shut
    /// down): the close line is then logged at warn.
    pub fn is_fault(&self) -> bool {
        !matches!(
            self,
            Self::Shutdown
                | Self::PeerClosed
                | Self::ReadFailed(_)
                | Self::WriteFailed(_)
                | Self::CommandPoolClosed
                // Logged at warn once, with the bytes left queued, where it is detected.
                | Self::DeadPeer(_)
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("publisher shutting down"),
            Self::PeerClosed => f.write_str("subscriber closed the connection"),
            Self::ReadFailed(e) => write!(f, "read failed: {e}"),
            Self::WriteFailed(e) => write!(f, "write failed: {e}"),
            Self::NoModes(t) => write!(f, "no operational modes within {} s", t.as_secs()),
            Self::FirstCommandTimeout(t) => write!(
                f,
                "no complete command within {:.1} s of connecting",
                t.as_secs_f64()
            ),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Oversized(e) => write!(f, "protocol error: {e}"),
            Self::Session(e) => f.write_str(e),
            Self::MemoryBudget { held, limit } => write!(
                f,
                "memory budget exceeded: {held} bytes buffered and queued, budget {limit}"
            ),
            Self::SlowConsumer => f.write_str("slow consumer: response queue full"),
            Self::CpuBudget { used } => write!(
                f,
                "command CPU budget exceeded: {:.3} s of CPU used by this connection's commands",
                used.as_secs_f64()
            ),
            Self::CommandPoolClosed => f.write_str("command pool closed"),
            Self::AccessDenied(e) => write!(f, "access denied: {e}"),
            Self::DeadPeer(e) => write!(f, "dead peer: {e}"),
            Self::TransportRefused(e) => write!(f, "refused by the transport: {e}"),
            Self::HandshakeTimeout(t) => write!(
                f,
                "transport handshake not completed within {:.1} s",
                t.as_secs_f64()
            ),
        }
    }
}

/// Why a connection was refused before a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// `max_connections` were open.
    TooManyConnections,
    /// The source had `limits.max_per_source` connections open.
    TooManyFromSource,
    /// The source is throttled after repeated failures.
    Throttled,
}

impl RefusalKind {
    /// Every kind's label, in declaration order.
    pub const LABELS: [&'static str; 3] =
        ["too_many_connections", "too_many_from_source", "throttled"];

    fn index(self) -> usize {
        self as usize
    }
}

/// One counter per close reason and per refusal kind.
#[derive(Debug, Default)]
pub struct CloseCounters {
    closes: [AtomicU64; KINDS],
    refusals: [AtomicU64; 3],
}

impl CloseCounters {
    /// Counts one close.
    pub fn count_close(&self, reason: &CloseReason) {
        if let Some(c) = self.closes.get(reason.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts one refusal.
    pub fn count_refusal(&self, kind: RefusalKind) {
        if let Some(c) = self.refusals.get(kind.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// `(label, count)` for every close reason, in [`CloseReason::LABELS`] order.
    pub fn closes(&self) -> Vec<(&'static str, u64)> {
        CloseReason::LABELS
            .iter()
            .zip(&self.closes)
            .map(|(l, c)| (*l, c.load(Relaxed)))
            .collect()
    }

    /// `(label, count)` for every refusal kind.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        RefusalKind::LABELS
            .iter()
            .zip(&self.refusals)
            .map(|(l, c)| (*l, c.load(Relaxed)))
            .collect()
    }

    /// All refusals together.
    pub fn refused_total(&self) -> u64 {
        self.refusals.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The count for the close reason labelled `label` (0 for an unknown label).
    pub fn close_count(&self, label: &str) -> u64 {
        self.closes()
            .into_iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<CloseReason> {
        let d = Duration::from_secs(1);
        vec![
            CloseReason::Shutdown,
            CloseReason::PeerClosed,
            CloseReason::ReadFailed("x".into()),
            CloseReason::WriteFailed("x".into()),
            CloseReason::NoModes(d),
            CloseReason::FirstCommandTimeout(d),
            CloseReason::Protocol("x".into()),
            CloseReason::Oversized("x".into()),
            CloseReason::Session("x".into()),
            CloseReason::MemoryBudget { held: 1, limit: 1 },
            CloseReason::SlowConsumer,
            CloseReason::CpuBudget { used: d },
            CloseReason::CommandPoolClosed,
            CloseReason::AccessDenied("x".into()),
            CloseReason::DeadPeer("x".into()),
            CloseReason::TransportRefused("x".into()),
            CloseReason::HandshakeTimeout(d),
        ]
    }

    #[test]
    fn every_reason_has_its_own_label_and_counter() {
        let all = one_of_each();
        assert_eq!(all.len(), KINDS);
        let mut seen: Vec<usize> = all.iter().map(CloseReason::index).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), KINDS, "two kinds share an index");
        let counters = CloseCounters::default();
        for (i, r) in all.iter().enumerate() {
            for _ in 0..=i {
                counters.count_close(r);
            }
        }
        for (i, r) in all.iter().enumerate() {
            assert_eq!(
                counters.close_count(r.label()),
                i as u64 + 1,
                "{}",
                r.label()
            );
        }
    }

    #[test]
    fn refusals_add_up() {
        let c = CloseCounters::default();
        c.count_refusal(RefusalKind::Throttled);
        c.count_refusal(RefusalKind::TooManyFromSource);
        c.count_refusal(RefusalKind::TooManyFromSource);
        assert_eq!(c.refused_total(), 3);
        assert_eq!(c.refusals()[1], ("too_many_from_source", 2));
    }
}
