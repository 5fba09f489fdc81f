//! Batched UDP sending for the data channel (wire.md §8: each datagram is one bare DataPacket or
//! BufferBlock response body, possibly sealed).
//!
//! A worker collects the datagrams of one turn in an [`OutDatagrams`] batch and hands it to a
//! [`UdpBackend`]. Two backends sit behind the trait: io_uring (`IORING_OP_SENDMSG`, one ring per
//! backend) and the portable `sendmmsg(2)`. Both group runs of equal-length datagrams to one
//! destination into one UDP GSO send (`UDP_SEGMENT`), which is where the speed comes from: one
//! datagram per send costs ~3–4 µs of sender CPU here whatever the batching (design.md,
//! "Measuring performance"). Sockets are non-blocking: a full socket buffer drops and counts,
//! it never stalls the worker.

mod batch;
mod mmsg;
mod socket;
mod uring;

pub use batch::{Group, OutDatagrams, MAX_GROUP_BYTES, MAX_GROUP_SEGMENTS};
pub use mmsg::MmsgBackend;
pub use uring::UringBackend;

use std::fmt;
use std::str::FromStr;

/// Which backend to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// io_uring when the kernel allows it, else sendmmsg.
    #[default]
    Auto,
    /// io_uring, or an error.
    IoUring,
    /// sendmmsg.
    Sendmmsg,
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::IoUring => "io-uring",
            BackendChoice::Sendmmsg => "sendmmsg",
        })
    }
}

/// A backend name that is none of `auto`, `io-uring`, `sendmmsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBackendError(String);

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown UDP backend {:?}: expected auto, io-uring or sendmmsg",
            self.0
        )
    }
}

impl std::error::Error for ParseBackendError {}

impl FromStr for BackendChoice {
    type Err = ParseBackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "io-uring" => Ok(BackendChoice::IoUring),
            "sendmmsg" => Ok(BackendChoice::Sendmmsg),
            other => Err(ParseBackendError(other.to_owned())),
        }
    }
}

/// The backend actually opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    IoUring,
    Sendmmsg,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::IoUring => "io-uring",
            BackendKind::Sendmmsg => "sendmmsg",
        })
    }
}

/// Default `SO_SNDBUF`: 4 MiB holds ~3 000 datagrams of 1400 bytes, several worker turns.
pub const DEFAULT_SEND_BUFFER: usize = 4 * 1024 * 1024;

/// How to open a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendOptions {
    pub choice: BackendChoice,
    /// Use UDP GSO where the kernel supports it.
    pub gso: bool,
    /// `SO_SNDBUF` of each sending socket, in bytes (0 keeps the system default). Set with
    /// `SO_SNDBUFFORCE` when the process may (`CAP_NET_ADMIN`), else with `SO_SNDBUF`, which
    /// the kernel caps at `net.core.wmem_max` (socket(7)).
    pub send_buffer: usize,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            choice: BackendChoice::Auto,
            gso: true,
            send_buffer: DEFAULT_SEND_BUFFER,
        }
    }
}

/// What one [`UdpBackend::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub datagrams: u64,
    /// Payload bytes the kernel accepted.
    pub bytes: u64,
    /// Datagrams dropped because the socket buffer was full.
    pub would_block: u64,
    /// Datagrams dropped by other errors.
    pub errors: u64,
    /// System calls (`sendmmsg`) or `io_uring_enter` calls made.
    pub submissions: u64,
}

impl std::ops::AddAssign for SendReport {
    fn add_assign(&mut self, other: Self) {
        self.datagrams += other.datagrams;
        self.bytes += other.bytes;
        self.would_block += other.would_block;
        self.errors += other.errors;
        self.submissions += other.submissions;
    }
}

/// A batched UDP sender owned by one worker.
pub trait UdpBackend: Send {
    /// Which implementation this is.
    fn kind(&self) -> BackendKind;
    /// Whether GSO is actually in use (asked for, supported, not switched off after an error).
    fn gso(&self) -> bool;
    /// Sends every datagram of `out` (then clears it). Never blocks on a full socket buffer
    /// (non-blocking sockets): what cannot be sent is dropped and counted. Bounded work.
    fn send(&mut self, out: &mut OutDatagrams) -> SendReport;
}

/// Opens a backend. `Auto` tries io_uring (probe by creating a ring and checking the SendMsg
/// opcode) and falls back to sendmmsg; the choice and the reason are logged with
/// `tracing::info!`. An explicit `IoUring` that is unavailable is an error naming why.
pub fn open(options: &BackendOptions) -> std::io::Result<Box<dyn UdpBackend>> {
    let gso = options.gso && gso_supported();
    let backend: Box<dyn UdpBackend> = match options.choice {
        BackendChoice::Sendmmsg => {
            tracing::info!("UDP backend: sendmmsg (configured), GSO {}", on_off(gso));
            Box::new(MmsgBackend::new(gso, options.send_buffer))
        }
        BackendChoice::IoUring => {
            uring::probe()?;
            let backend = UringBackend::new(gso, options.send_buffer)?;
            tracing::info!("UDP backend: io-uring (configured), GSO {}", on_off(gso));
            Box::new(backend)
        }
        BackendChoice::Auto => {
            match uring::probe().and_then(|()| UringBackend::new(gso, options.send_buffer)) {
                Ok(backend) => {
                    tracing::info!(
                        "UDP backend: io-uring (auto: io_uring with SENDMSG available), GSO {}",
                        on_off(gso)
                    );
                    Box::new(backend)
                }
                Err(e) => {
                    tracing::info!("UDP backend: sendmmsg (auto: {e}), GSO {}", on_off(gso));
                    Box::new(MmsgBackend::new(gso, options.send_buffer))
                }
            }
        }
    };
    Ok(backend)
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// Whether the kernel accepts `UDP_SEGMENT` on UDP sockets (IPv4; IPv6 shares the code path).
fn gso_supported() -> bool {
    match socket::probe_gso(socket::Family::V4) {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(
                "UDP GSO unavailable (setsockopt UDP_SEGMENT: {e}); sending plain datagrams"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice_parses_displays_and_deserializes() {
        for (text, choice) in [
            ("auto", BackendChoice::Auto),
            ("io-uring", BackendChoice::IoUring),
            ("sendmmsg", BackendChoice::Sendmmsg),
        ] {
            assert_eq!(text.parse::<BackendChoice>(), Ok(choice));
            assert_eq!(choice.to_string(), text);
            let json = format!("\"{text}\"");
            let de: Result<BackendChoice, _> =
                serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(text));
            assert_eq!(de.ok(), Some(choice), "{json}");
        }
        let err = "uring"
            .parse::<BackendChoice>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown UDP backend \"uring\": expected auto, io-uring or sendmmsg")
        );
        assert_eq!(BackendChoice::default(), BackendChoice::Auto);
        assert_eq!(BackendKind::IoUring.to_string(), "io-uring");
        let defaults = BackendOptions::default();
        assert!(defaults.gso);
        assert_eq!(defaults.send_buffer, 4 << 20);
    }
}
