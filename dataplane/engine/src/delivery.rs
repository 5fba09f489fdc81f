//! Where a subscription's packets go: back over its TCP command channel, or as UDP datagrams
//! to the address its subscriber named with `dataChannel={localport=N}` (wire.md §8).
//!
//! Over UDP only DataPacket and BufferBlock responses travel, each as one bare response body
//! (no 4-byte frame prefix), optionally sealed; every other response the encoder produces
//! (DataStartTime, UpdateBaseTimes) still goes over TCP. [`UdpSplit`] does that split when an
//! encoder flushes, writing datagrams straight into the worker's send batch.

use crate::io::OutDatagrams;
use crate::sink::{PacketSink, SinkStatus};
use std::net::SocketAddr;
use sttp_wire::frame::{self, code};

/// IPv4 header without options.
const IPV4_HEADER: usize = 20;
/// IPv6 fixed header.
const IPV6_HEADER: usize = 40;
/// UDP header.
const UDP_HEADER: usize = 8;
/// BufferBlock response code (wire.md §1.2).
const BUFFER_BLOCK: u8 = 0x88;

/// How a subscription's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Framed responses on the subscriber's TCP command channel.
    Tcp,
    /// UDP datagrams to `dest`.
    Udp {
        /// The subscriber's address and `localport`.
        dest: SocketAddr,
    },
}

/// Seals one bare response body into one datagram (an authenticated cipher between our own
/// peers, or the legacy GSF cipher for stock ones).
pub trait Sealer: Send {
    /// Appends the sealed datagram for `body` to `out`; false if the body could not be sealed
    /// (the datagram is then not sent and counted as a send error).
    fn seal(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool;
    /// Bytes sealing adds to a body (header, tag, padding at most).
    fn overhead(&self) -> usize;
    /// A short name for logs ("aes-256-gcm epoch 3").
    fn describe(&self) -> String;
}

/// The largest DataPacket payload (flags + count + measurements) whose datagram fits `mtu`
/// without IP fragmentation, for `dest`'s address family and a sealer adding `overhead`.
/// Never less than one compact measurement's worth, so a tiny MTU still makes progress.
pub fn udp_max_payload(mtu: usize, dest: SocketAddr, overhead: usize) -> usize {
    let ip = if dest.is_ipv4() {
        IPV4_HEADER
    } else {
        IPV6_HEADER
    };
    mtu.saturating_sub(ip + UDP_HEADER + frame::RESPONSE_HEADER_LEN + overhead)
        .max(64)
}

/// Per-flush counters of a split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitCounts {
    /// Datagrams appended to the batch.
    pub datagrams: u64,
    /// Bytes of those datagrams.
    pub bytes: u64,
    /// Bodies a sealer refused.
    pub seal_failures: u64,
}

/// A [`PacketSink`] that sends data responses as datagrams and everything else over TCP.
pub struct UdpSplit<'a> {
    /// Destination of the datagrams.
    pub dest: SocketAddr,
    /// The worker's batch for this turn.
    pub out: &'a mut OutDatagrams,
    /// The subscriber's TCP command channel.
    pub control: &'a mut dyn PacketSink,
    /// The cipher, when the data channel is encrypted.
    pub sealer: Option<&'a mut (dyn Sealer + 'static)>,
    /// What this flush produced.
    pub counts: SplitCounts,
}

impl PacketSink for UdpSplit<'_> {
    fn offer(&mut self, frames: Vec<u8>) -> SinkStatus {
        let mut control = Vec::new();
        let mut rest = frames.as_slice();
        while let Some((frame_bytes, tail)) = split_frame(rest) {
            rest = tail;
            let body = frame_bytes.get(frame::PREFIX_LEN..).unwrap_or_default();
            let is_data = matches!(
                body.get(frame::RESPONSE_CODE),
                Some(&code::DATA_PACKET) | Some(&BUFFER_BLOCK)
            );
            if !is_data {
                control.extend_from_slice(frame_bytes);
                continue;
            }
            let before = self.out.bytes();
            let mut sealed = true;
            match self.sealer.as_deref_mut() {
                Some(sealer) => self
                    .out
                    .push_with(self.dest, |buf| sealed = sealer.seal(body, buf)),
                None => self.out.push(self.dest, body),
            }
            if sealed {
                self.counts.datagrams += 1;
                self.counts.bytes += (self.out.bytes() - before) as u64;
            } else {
                self.counts.seal_failures += 1;
            }
        }
        if control.is_empty() {
            SinkStatus::Accepted
        } else {
            // In-band responses are small and rare (one per base-time rotation); when the
            // command channel is full they are dropped like any data, and the encoder's
            // slow-subscriber policy restarts the stream.
            self.control.offer(control)
        }
    }
}

/// Splits the first length-prefixed frame off `bytes` (the encoder only writes whole frames).
fn split_frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let prefix = bytes.get(..frame::PREFIX_LEN)?;
    let len = u32::from_be_bytes(prefix.try_into().ok()?) as usize;
    let total = frame::PREFIX_LEN.checked_add(len)?;
    if total > bytes.len() {
        return None;
    }
    Some(bytes.split_at(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::VecSink;

    fn framed(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        frame::write_response(&mut v, code, 0x02, payload);
        v
    }

    struct Xor;
    impl Sealer for Xor {
        fn seal(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
            out.push(0xA5);
            out.extend(body.iter().map(|b| b ^ 0xFF));
            true
        }
        fn overhead(&self) -> usize {
            1
        }
        fn describe(&self) -> String {
            "xor".into()
        }
    }

    #[test]
    fn data_goes_out_as_bare_datagrams_and_the_rest_over_tcp() {
        let dest: SocketAddr = "127.0.0.1:9600".parse().unwrap();
        let mut bytes = framed(code::DATA_START_TIME, &[1; 8]);
        bytes.extend(framed(code::DATA_PACKET, &[2; 30]));
        bytes.extend(framed(code::UPDATE_BASE_TIMES, &[3; 20]));
        bytes.extend(framed(code::DATA_PACKET, &[4; 10]));
        let mut out = OutDatagrams::new();
        let mut tcp = VecSink::default();
        let mut split = UdpSplit {
            dest,
            out: &mut out,
            control: &mut tcp,
            sealer: None,
            counts: SplitCounts::default(),
        };
        assert_eq!(split.offer(bytes), SinkStatus::Accepted);
        assert_eq!(split.counts.datagrams, 2);
        let datagrams: Vec<Vec<u8>> = out.iter().map(|(_, d)| d.to_vec()).collect();
        assert_eq!(datagrams.len(), 2);
        assert_eq!(
            datagrams[0],
            framed(code::DATA_PACKET, &[2; 30])[4..].to_vec()
        );
        assert_eq!(
            datagrams[1],
            framed(code::DATA_PACKET, &[4; 10])[4..].to_vec()
        );
        let mut expected_tcp = framed(code::DATA_START_TIME, &[1; 8]);
        expected_tcp.extend(framed(code::UPDATE_BASE_TIMES, &[3; 20]));
        assert_eq!(*tcp.frames.lock().unwrap(), expected_tcp);
    }

    #[test]
    fn a_sealer_writes_each_datagram_in_place() {
        let dest: SocketAddr = "[::1]:9600".parse().unwrap();
        let mut out = OutDatagrams::new();
        let mut tcp = VecSink::default();
        let mut xor = Xor;
        let mut split = UdpSplit {
            dest,
            out: &mut out,
            control: &mut tcp,
            sealer: Some(&mut xor),
            counts: SplitCounts::default(),
        };
        split.offer(framed(code::DATA_PACKET, &[7; 5]));
        assert_eq!(split.counts.bytes, 1 + 6 + 5);
        let (to, d) = out.iter().next().unwrap();
        assert_eq!(to, dest);
        assert_eq!(d[0], 0xA5);
        assert_eq!(d[1], code::DATA_PACKET ^ 0xFF);
        assert!(tcp.frames.lock().unwrap().is_empty());
    }

    #[test]
    fn datagrams_fit_the_mtu() {
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(udp_max_payload(1500, v4, 0) + 6 + 8 + 20, 1500);
        assert_eq!(udp_max_payload(1500, v6, 28) + 28 + 6 + 8 + 40, 1500);
        assert_eq!(udp_max_payload(10, v4, 0), 64);
    }
}
