//! The subscriber's UDP data channel (wire.md §8): the socket bound to `localport`, the
//! authenticated-datagram keyring of our AES-256-GCM extension (wire.md §11), and the counters
//! an operator (or the perf harness) reads.
//!
//! Sealed datagrams are opened in place in the receive buffer; anything that fails
//! authentication or replays is dropped and counted, and never reaches the session. With
//! encryption on, plaintext datagrams are dropped too: a forged plaintext DataPacket must not
//! be accepted just because it does not look sealed.
//!
//! Against a stock publisher (which ignores the extension and sends plain datagrams) the
//! decision is made on the command channel only — no key announcement within a short time of
//! the subscription's acknowledgement — never on what arrives on the UDP port, which anyone can
//! send to: a forged plain datagram cannot talk the subscriber into dropping authentication
//! (docs/subscriber.md "UDP cipher fallback").

use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use sttp_proto::ext::{self, ExtMessage};
use sttp_proto::session::SubscriberSession;
use sttp_wire::aead::{Keyring, OpenError};
use tokio::net::UdpSocket;

/// Receive buffer: pyapi accepts any datagram up to 32 KiB; we take up to the UDP maximum.
const DATAGRAM_BUFFER: usize = 65_536;
/// Kernel receive buffer requested for the data socket (the kernel may cap it at rmem_max).
const RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// A UDP data channel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpChannel {
    /// Local port the publisher sends to (`dataChannel={localport=N}`). 0: the kernel picks a
    /// free port when the channel is first bound (the same port is asked for again on
    /// reconnects), and that port is what the subscribe request names; read it back with
    /// [`ClientStats::udp_port`].
    pub port: u16,
    /// Datagram protection.
    pub cipher: UdpCipherChoice,
}

/// Datagram protection on a UDP data channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpCipherChoice {
    /// AES-256-GCM with replay protection, required: our extension, only with an sttp
    /// publisher. When the publisher does not announce a key the connection stops with an
    /// error (no fallback).
    #[default]
    AesGcm,
    /// AES-256-GCM when the publisher takes up the extension; otherwise (no key announced
    /// within `SubscriberConfig::udp_key_wait` of the subscription) a warning and plain
    /// datagrams, as stock publishers send them. What `sttp subscribe --udp` does without an
    /// explicit `--udp-cipher`.
    Prefer,
    /// Plain datagrams, as every stock STTP peer sends them.
    None,
}

impl std::str::FromStr for UdpCipherChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "aes-gcm" | "aes-256-gcm" | "gcm" => Ok(Self::AesGcm),
            "prefer" | "auto" => Ok(Self::Prefer),
            "none" | "plain" => Ok(Self::None),
            other => Err(format!(
                "unknown UDP cipher {other:?}: use aes-gcm, prefer or none"
            )),
        }
    }
}

/// Counters of the subscriber client.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub datagrams_received: AtomicU64,
    pub datagram_bytes: AtomicU64,
    pub points_received: AtomicU64,
    pub auth_failures: AtomicU64,
    pub replays: AtomicU64,
    pub decode_errors: AtomicU64,
    pub key_epochs_installed: AtomicU64,
    /// Local port of the bound UDP data socket (0 before the first bind).
    pub udp_port: AtomicU16,
}

/// A plain-value copy of [`ClientCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// Datagrams read from the data socket.
    pub datagrams_received: u64,
    /// Their bytes.
    pub datagram_bytes: u64,
    /// Measurements delivered to the application (TCP and UDP).
    pub points_received: u64,
    /// Datagrams refused: authentication, unknown or expired key, bad header, or plaintext
    /// while encryption is on.
    pub auth_failures: u64,
    /// Datagrams refused as replays (already seen, or behind the replay window).
    pub replays: u64,
    /// Data packets the session could not decode.
    pub decode_errors: u64,
    /// Data-channel keys installed.
    pub key_epochs_installed: u64,
    /// Local port of the UDP data socket (0 before it is bound, or without a data channel).
    pub udp_port: u16,
}

impl ClientCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> ClientStats {
        ClientStats {
            datagrams_received: self.datagrams_received.load(Relaxed),
            datagram_bytes: self.datagram_bytes.load(Relaxed),
            points_received: self.points_received.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            replays: self.replays.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            key_epochs_installed: self.key_epochs_installed.load(Relaxed),
            udp_port: self.udp_port.load(Relaxed),
        }
    }
}

/// The bound data socket of one connection.
pub(crate) struct UdpReceiver {
    socket: UdpSocket,
    keyring: Option<Keyring>,
    cipher: UdpCipherChoice,
    has_key: bool,
    /// Datagrams refused on this connection (authentication, replay).
    refused: u64,
    buf: Vec<u8>,
    counters: Arc<ClientCounters>,
    started: Instant,
}

impl UdpReceiver {
    /// Binds `port` on every interface — IPv6 and IPv4 on one dual-stack socket where the host
    /// has IPv6, since the publisher sends from whichever family the command channel uses —
    /// with a large receive buffer.
    pub async fn bind(
        channel: &UdpChannel,
        counters: Arc<ClientCounters>,
    ) -> std::io::Result<Self> {
        // Port 0: the port this client already had (stable across reconnects), else any.
        let previous = counters.udp_port.load(Relaxed);
        let wanted = if channel.port == 0 && previous != 0 {
            previous
        } else {
            channel.port
        };
        let socket = bind_port(wanted)
            .or_else(|e| match (channel.port, wanted) {
                (0, w) if w != 0 => bind_port(0),
                _ => Err(e),
            })
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind the UDP data channel on port {}: {e}",
                        channel.port
                    ),
                )
            })?;
        let port = socket
            .local_addr()?
            .as_socket()
            .map_or(channel.port, |a| a.port());
        if channel.port == 0 && port != previous {
            tracing::info!(port, "UDP data channel bound on an ephemeral port");
        }
        counters.udp_port.store(port, Relaxed);
        let socket = UdpSocket::from_std(socket.into())?;
        Ok(Self {
            socket,
            keyring: (channel.cipher != UdpCipherChoice::None).then(Keyring::new),
            cipher: channel.cipher,
            has_key: false,
            refused: 0,
            buf: vec![0; DATAGRAM_BUFFER],
            counters,
            started: Instant::now(),
        })
    }

    /// The bound local port (what `dataChannel={localport=N}` must name).
    pub fn local_port(&self) -> u16 {
        self.socket.local_addr().map_or(0, |a| a.port())
    }

    /// The protection asked for.
    pub fn cipher(&self) -> UdpCipherChoice {
        self.cipher
    }

    /// True once a data-channel key was installed (or when no cipher is in use).
    pub fn has_key(&self) -> bool {
        self.keyring.is_none() || self.has_key
    }

    /// Datagrams refused on this connection.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The publisher did not take up the extension: accept plain datagrams from now on.
    pub fn fall_back_to_plain(&mut self) {
        self.keyring = None;
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Waits for the next datagram; returns its length.
    pub async fn recv(&mut self) -> std::io::Result<usize> {
        let n = self.socket.recv(&mut self.buf).await?;
        self.counters.datagrams_received.fetch_add(1, Relaxed);
        self.counters.datagram_bytes.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    /// Opens (when sealed) and hands datagram `n` of the buffer to the session.
    pub fn deliver(&mut self, n: usize, session: &mut SubscriberSession) {
        let now_ms = self.now_ms();
        let Some(datagram) = self.buf.get_mut(..n) else {
            return;
        };
        match self.keyring.as_mut() {
            None => session.handle_datagram(datagram),
            Some(keyring) => match keyring.open_in_place(datagram, now_ms) {
                Ok(opened) => session.handle_datagram(opened.plaintext),
                Err(OpenError::Replayed | OpenError::TooOld) => {
                    self.counters.replays.fetch_add(1, Relaxed);
                    self.refused += 1;
                }
                Err(e) => {
                    self.counters.auth_failures.fetch_add(1, Relaxed);
                    self.refused += 1;
                    // The first refusal, then every 1000th, at warn: the reason must be
                    // visible, a flood of forged datagrams must not flood the log.
                    if self.refused == 1 || self.refused.is_multiple_of(1000) {
                        tracing::warn!(
                            reason = e.name(),
                            refused = self.refused,
                            keys = self.has_key,
                            "UDP datagram refused (authentication required on the data channel)"
                        );
                    } else {
                        tracing::debug!(reason = e.name(), "datagram refused");
                    }
                }
            },
        }
    }

    /// Handles a user response that may be a key announcement; returns the user command
    /// (code, data) confirming it, once the key is installed.
    pub fn on_user_response(&mut self, code: u8, data: &[u8]) -> Option<(u8, Vec<u8>)> {
        let now_ms = self.now_ms();
        let keyring = self.keyring.as_mut()?;
        match ExtMessage::decode(code, data) {
            Ok(Some(ExtMessage::KeyAnnounce { epoch, key })) => {
                match keyring.install(epoch, &key, now_ms) {
                    Ok(()) => {
                        self.has_key = true;
                        self.counters.key_epochs_installed.fetch_add(1, Relaxed);
                        tracing::info!(epoch, "data-channel key installed");
                        Some((ext::USER_COMMAND, ExtMessage::KeyConfirm { epoch }.encode()))
                    }
                    Err(e) => {
                        tracing::warn!(epoch, error = %e, "data-channel key refused");
                        None
                    }
                }
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "malformed extension message from the publisher");
                None
            }
        }
    }
}

fn socket_for(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket_for(addr)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_port(port: u16) -> std::io::Result<socket2::Socket> {
    dual_stack(port).or_else(|_| bind_one(SocketAddr::from(([0, 0, 0, 0], port))))
}

fn dual_stack(port: u16) -> std::io::Result<socket2::Socket> {
    let addr = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    let socket = socket_for(addr)?;
    socket.set_only_v6(false)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}
