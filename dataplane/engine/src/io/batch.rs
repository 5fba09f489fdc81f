//! The datagrams one worker turn produces, in one contiguous buffer, grouped for UDP GSO.
//!
//! What goes in a datagram is wire.md §8 (a bare DataPacket or BufferBlock response body, possibly
//! sealed); this module only decides how datagrams are laid out and grouped so a backend can hand
//! a whole group to the kernel as one `sendmsg` with a `UDP_SEGMENT` control message.
//!
//! The kernel's rule for a GSO send (`udp_send_skb`): the buffer is cut into segments of exactly
//! `gso_size` bytes, and only the last segment may be shorter. So a group is a run of consecutive
//! datagrams to one destination with the same length, optionally closed by one shorter datagram.

use std::net::SocketAddr;

/// Most datagrams in one GSO group. The kernel's `UDP_MAX_SEGMENTS` was 64 until 6.x raised it;
/// 64 works on every kernel that has GSO at all.
pub const MAX_GROUP_SEGMENTS: usize = 64;

/// Most bytes in one GSO group: a GSO send is one UDP datagram before segmentation, so its payload
/// must stay under the 65 507-byte IPv4 limit (65 487 for IPv6); 65 000 leaves room for both.
pub const MAX_GROUP_BYTES: usize = 65_000;

/// A run of datagrams to one destination that can go out as one GSO send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Where every datagram of the group goes.
    pub dest: SocketAddr,
    /// Offset of the first datagram in the batch buffer.
    pub start: usize,
    /// Total bytes of the group (the datagrams are contiguous).
    pub len: usize,
    /// Length of the first datagram: the GSO segment size. Every datagram but the last has
    /// exactly this length; the last may be shorter.
    pub segment: usize,
    /// Number of datagrams.
    pub count: usize,
}

impl Group {
    /// Whether a shorter datagram already closed the group.
    fn closed(&self) -> bool {
        self.len != self.segment * self.count
    }

    /// Whether a datagram of `len` bytes to `dest` may join this group.
    fn accepts(&self, dest: SocketAddr, len: usize) -> bool {
        self.dest == dest
            && !self.closed()
            && len <= self.segment
            && self.count < MAX_GROUP_SEGMENTS
            && self.len + len <= MAX_GROUP_BYTES
    }

    /// `(offset, length)` of each datagram of the group in the batch buffer.
    pub fn datagram_ranges(&self) -> impl Iterator<Item = (usize, usize)> {
        let Group {
            start,
            len,
            segment,
            count,
            ..
        } = *self;
        (0..count).map(move |i| {
            let offset = start + i * segment;
            let end = (offset + segment).min(start + len);
            (offset, end - offset)
        })
    }
}

/// Datagrams produced in one worker turn, in one contiguous buffer.
///
/// The buffer and the group list keep their capacity across [`OutDatagrams::clear`], so a
/// worker that reuses one `OutDatagrams` allocates nothing in the steady state.
#[derive(Debug, Default, Clone)]
pub struct OutDatagrams {
    buf: Vec<u8>,
    groups: Vec<Group>,
    datagrams: usize,
}

impl OutDatagrams {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one datagram to `dest`, written by `write` directly into the batch buffer (so a
    /// sealer can encrypt in place without a copy).
    ///
    /// `write` must only append to the vector it is given: the bytes before its current length
    /// belong to earlier datagrams. Consecutive
    /// datagrams to the same destination with the same length are grouped for UDP GSO (see the
    /// module documentation); an empty write appends nothing.
    pub fn push_with(&mut self, dest: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        if self.buf.len() <= start {
            // Nothing written. (A writer that cut into earlier datagrams broke the contract;
            // the batch then holds whatever it left, and is not made worse.)
            return;
        }
        let len = self.buf.len() - start;
        self.datagrams += 1;
        if let Some(last) = self.groups.last_mut() {
            if last.accepts(dest, len) {
                last.len += len;
                last.count += 1;
                return;
            }
        }
        self.groups.push(Group {
            dest,
            start,
            len,
            segment: len,
            count: 1,
        });
    }

    /// Appends a copy of `datagram` (see [`OutDatagrams::push_with`]).
    pub fn push(&mut self, dest: SocketAddr, datagram: &[u8]) {
        self.push_with(dest, |buf| buf.extend_from_slice(datagram));
    }

    /// Number of datagrams in the batch.
    pub fn datagrams(&self) -> usize {
        self.datagrams
    }

    /// Payload bytes in the batch.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.datagrams == 0
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.groups.clear();
        self.datagrams = 0;
    }

    /// Each datagram with its destination, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.groups.iter().flat_map(move |g| {
            g.datagram_ranges().map(move |(offset, len)| {
                (g.dest, self.buf.get(offset..offset + len).unwrap_or(&[]))
            })
        })
    }

    /// The GSO groups, in order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The batch buffer every group points into.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn shape(out: &OutDatagrams) -> Vec<(u16, usize, usize, usize)> {
        out.groups()
            .iter()
            .map(|g| (g.dest.port(), g.segment, g.count, g.len))
            .collect()
    }

    #[test]
    fn equal_lengths_group_and_a_shorter_tail_closes_the_group() {
        let mut out = OutDatagrams::new();
        for _ in 0..3 {
            out.push(addr(1), &[1; 100]);
        }
        out.push(addr(1), &[2; 40]); // tail: joins, then closes
        out.push(addr(1), &[3; 40]); // closed group: starts a new one
        out.push(addr(1), &[4; 50]); // longer than the segment: new group
        out.push(addr(2), &[5; 50]); // other destination: new group
        assert_eq!(
            shape(&out),
            vec![
                (1, 100, 4, 340),
                (1, 40, 1, 40),
                (1, 50, 1, 50),
                (2, 50, 1, 50)
            ]
        );
        assert_eq!(out.datagrams(), 7);
        assert_eq!(out.bytes(), 340 + 40 + 50 + 50);
        let lens: Vec<usize> = out.iter().map(|(_, d)| d.len()).collect();
        assert_eq!(lens, vec![100, 100, 100, 40, 40, 50, 50]);
        let firsts: Vec<u8> = out.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(firsts, vec![1, 1, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn groups_are_capped_by_segments_and_bytes() {
        let mut out = OutDatagrams::new();
        for _ in 0..(MAX_GROUP_SEGMENTS + 3) {
            out.push(addr(1), &[0; 10]);
        }
        assert_eq!(
            shape(&out),
            vec![(1, 10, MAX_GROUP_SEGMENTS, 640), (1, 10, 3, 30)]
        );

        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.bytes(), 0);
        // 1400-byte datagrams: 46 fit in 65 000 bytes (46 × 1400 = 64 400), the 47th does not.
        for _ in 0..50 {
            out.push(addr(1), &[0; 1400]);
        }
        assert_eq!(shape(&out), vec![(1, 1400, 46, 64_400), (1, 1400, 4, 5600)]);
        assert!(out.groups().iter().all(|g| g.len <= MAX_GROUP_BYTES));

        // A datagram larger than the cap still goes out, alone.
        out.clear();
        out.push(addr(1), &[0; 65_300]);
        out.push(addr(1), &[0; 65_300]);
        assert_eq!(
            shape(&out),
            vec![(1, 65_300, 1, 65_300), (1, 65_300, 1, 65_300)]
        );
    }

    #[test]
    fn empty_writes_append_nothing() {
        let mut out = OutDatagrams::new();
        out.push(addr(1), &[7; 8]);
        out.push_with(addr(1), |_| {});
        out.push(addr(1), &[]);
        assert_eq!(out.datagrams(), 1);
        assert_eq!(out.bytes(), 8);
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![(addr(1), &[7u8; 8][..])]
        );
    }

    #[test]
    fn push_with_writes_in_place() {
        let mut out = OutDatagrams::new();
        out.push(addr(3), b"head");
        out.push_with(addr(3), |buf| {
            let at = buf.len();
            buf.extend_from_slice(b"abcd");
            if let Some(tail) = buf.get_mut(at..) {
                tail.reverse(); // an in-place transformation, as a sealer does
            }
        });
        let got: Vec<&[u8]> = out.iter().map(|(_, d)| d).collect();
        assert_eq!(got, vec![&b"head"[..], &b"dcba"[..]]);
        assert_eq!(out.groups().len(), 1);
    }
}
