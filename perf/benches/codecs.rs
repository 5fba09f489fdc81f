//! Criterion benches of the hot-path data codecs (wire.md §4.1 compact, §4.2 TSSC), in points/s
//! (`Throughput::Elements`).
//!
//! Workload: 1000 signals × 300 frames at 30 fps, one timestamp per frame, runtime IDs in
//! ascending order per frame (as a signal index cache produces them), all flags 0.
//! - `smooth`: values `60 + 0.01·sin(...)`, the typical PMU stream where TSSC shines;
//! - `random`: random `f32` values, the worst case for the value XOR codes.
//!
//! Packets are cut at 32 KiB (the reference publisher's buffer), with one persistent TSSC
//! session, so encode and decode run exactly the code paths a publisher/subscriber pair runs.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sttp_wire::compact::{self, CompactOptions};
use sttp_wire::packet::DataPacketHeader;
use sttp_wire::tssc::{PacketDecoder, PacketEncoder};
use sttp_wire::Measurement;

const SIGNALS: i32 = 1000;
const FRAMES: i64 = 300;
const T0: i64 = 638_000_000_000_000_000;
const FRAME_TICKS: i64 = 333_333;
const MAX_PAYLOAD: usize = 32 * 1024;

/// xorshift64*: deterministic values without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn stream(random: bool) -> Vec<Measurement> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity((SIGNALS as usize) * FRAMES as usize);
    for f in 0..FRAMES {
        for id in 0..SIGNALS {
            let value = if random {
                (rng.next() % 1_000_000) as f32 / 7.0
            } else {
                60.0 + 0.01 * ((f as f64) * 0.05 + f64::from(id)).sin() as f32
            };
            out.push(Measurement {
                runtime_id: id,
                timestamp: T0 + f * FRAME_TICKS,
                value,
                flags: 0,
            });
        }
    }
    out
}

/// The packet builders' common shape, so one loop drives both formats.
trait Builder {
    fn begin(&mut self, out: &mut Vec<u8>);
    fn try_add(&mut self, out: &mut Vec<u8>, m: &Measurement) -> bool;
    fn finish(&mut self, out: &mut Vec<u8>);
}

impl Builder for PacketEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        PacketEncoder::begin(self, out, 0, MAX_PAYLOAD);
    }
    fn try_add(&mut self, out: &mut Vec<u8>, m: &Measurement) -> bool {
        PacketEncoder::try_add(self, out, m)
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        PacketEncoder::finish(self, out);
    }
}

impl Builder for compact::PacketEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        compact::PacketEncoder::begin(self, out, 0, MAX_PAYLOAD);
    }
    fn try_add(&mut self, out: &mut Vec<u8>, m: &Measurement) -> bool {
        compact::PacketEncoder::try_add(self, out, m)
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        compact::PacketEncoder::finish(self, out);
    }
}

/// Encodes the whole stream into packets of at most `MAX_PAYLOAD` bytes.
#[inline(always)]
fn encode_all(enc: &mut impl Builder, points: &[Measurement], packets: &mut Vec<Vec<u8>>) {
    let mut buf = Vec::with_capacity(MAX_PAYLOAD);
    let mut used = 0;
    enc.begin(&mut buf);
    for m in points {
        if !enc.try_add(&mut buf, m) {
            enc.finish(&mut buf);
            store(packets, &mut used, &buf);
            buf.clear();
            enc.begin(&mut buf);
            enc.try_add(&mut buf, m);
        }
    }
    enc.finish(&mut buf);
    store(packets, &mut used, &buf);
    packets.truncate(used);
}

/// Encodes the whole stream into TSSC packets with a fresh session.
fn tssc_encode(points: &[Measurement], packets: &mut Vec<Vec<u8>>) {
    encode_all(&mut PacketEncoder::new(), points, packets);
}

fn compact_encode(points: &[Measurement], opts: CompactOptions, packets: &mut Vec<Vec<u8>>) {
    encode_all(&mut compact::PacketEncoder::new(opts), points, packets);
}

/// Copies a finished packet into a reused slot, so the bench measures the codec, not malloc.
fn store(packets: &mut Vec<Vec<u8>>, used: &mut usize, buf: &[u8]) {
    if *used == packets.len() {
        packets.push(Vec::with_capacity(MAX_PAYLOAD));
    }
    if let Some(p) = packets.get_mut(*used) {
        p.clear();
        p.extend_from_slice(buf);
    }
    *used += 1;
}

fn codecs(c: &mut Criterion) {
    let opts = CompactOptions {
        include_time: true,
        millisecond_resolution: false,
    };
    for (name, random) in [("smooth", false), ("random", true)] {
        let points = stream(random);
        let n = points.len() as u64;

        let mut tssc_packets = Vec::new();
        tssc_encode(&points, &mut tssc_packets);
        let tssc_bytes: usize = tssc_packets.iter().map(Vec::len).sum();
        let mut compact_packets = Vec::new();
        compact_encode(&points, opts, &mut compact_packets);
        let compact_bytes: usize = compact_packets.iter().map(Vec::len).sum();
        eprintln!(
            "{name}: {n} points; TSSC {tssc_bytes} B in {} packets ({:.2} B/point); \
             compact {compact_bytes} B ({:.2} B/point)",
            tssc_packets.len(),
            tssc_bytes as f64 / n as f64,
            compact_bytes as f64 / n as f64,
        );

        let mut g = c.benchmark_group(format!("codecs/{name}"));
        g.throughput(Throughput::Elements(n));
        g.bench_function(BenchmarkId::new("tssc", "encode"), |b| {
            let mut packets = Vec::new();
            b.iter(|| tssc_encode(black_box(&points), &mut packets));
        });
        g.bench_function(BenchmarkId::new("tssc", "decode"), |b| {
            let mut out = Vec::with_capacity(points.len());
            b.iter(|| {
                out.clear();
                let mut dec = PacketDecoder::new();
                for p in &tssc_packets {
                    if let Ok((_, body)) = DataPacketHeader::decode(black_box(p)) {
                        let _ = dec.decode(body, &mut out);
                    }
                }
                black_box(out.len())
            });
        });
        g.bench_function(BenchmarkId::new("compact", "encode"), |b| {
            let mut packets = Vec::new();
            b.iter(|| compact_encode(black_box(&points), opts, &mut packets));
        });
        g.bench_function(BenchmarkId::new("compact", "decode"), |b| {
            let mut out = Vec::with_capacity(points.len());
            b.iter(|| {
                out.clear();
                for p in &compact_packets {
                    if let Ok((h, body)) = DataPacketHeader::decode(black_box(p)) {
                        let count = usize::try_from(h.count).unwrap_or(0);
                        let _ = compact::decode(body, count, opts, None, &mut out);
                    }
                }
                black_box(out.len())
            });
        });
        g.finish();
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
