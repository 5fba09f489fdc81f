//! Criterion benches of the datagram ciphers: AES-256-GCM seal and open (`sttp_wire::aead`)
//! by plaintext size in bytes/s, the replay-window check, the whole-keyring rejection of a
//! forged datagram (test-plan T10 budget: ≤ 2 µs), and the legacy AES-256-CBC DataPacket
//! encryption (`sttp_wire::legacy_cbc`) at 1400 B.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sttp_wire::aead::{Keyring, ReplayWindow, SealingKey};
use sttp_wire::legacy_cbc::{encrypt_data_packet, CipherKeySet, LegacyKeys};

const SIZES: [usize; 4] = [64, 512, 1400, 8192];
const KEY: [u8; 32] = [0x42; 32];

/// A bare DataPacket response body of `n` bytes in all.
fn body(n: usize) -> Vec<u8> {
    let mut b = vec![0x82, 0x02];
    b.extend_from_slice(&((n - 6) as i32).to_be_bytes());
    b.extend((0..n - 6).map(|i| i as u8));
    b
}

fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead_seal");
    for n in SIZES {
        let p = body(n);
        let mut key = SealingKey::new(1, &KEY);
        let mut out = Vec::with_capacity(n + 64);
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &p, |b, p| {
            b.iter(|| {
                out.clear();
                key.seal_into(black_box(p), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead_open");
    for n in SIZES {
        // Pre-seal enough distinct datagrams that replay checks pass; the ring is rebuilt when
        // they run out (outside the timed loop, amortised over the batch).
        let mut key = SealingKey::new(1, &KEY);
        let datagrams: Vec<Vec<u8>> = (0..4096)
            .map(|_| {
                let mut d = Vec::new();
                key.seal_into(&body(n), &mut d).unwrap();
                d
            })
            .collect();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched_ref(
                || {
                    let mut ring = Keyring::new();
                    ring.install(1, &KEY, 0).unwrap();
                    (ring, 0usize)
                },
                |(ring, i)| {
                    let d = &datagrams[*i % datagrams.len()];
                    *i += 1;
                    black_box(ring.open(d, 0).map(|o| o.plaintext.len()).ok())
                },
                criterion::BatchSize::NumIterations(4096),
            )
        });
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_window");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_accept_in_order", |b| {
        let mut w = ReplayWindow::new();
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            if w.check(black_box(seq)).is_ok() {
                w.accept(seq);
            }
        })
    });
    g.bench_function("check_replayed", |b| {
        let mut w = ReplayWindow::new();
        for s in 0..1000 {
            w.accept(s);
        }
        b.iter(|| black_box(w.check(black_box(500))))
    });
    g.bench_function("keyring_reject_forged_1400", |b| {
        let mut ring = Keyring::new();
        ring.install(1, &KEY, 0).unwrap();
        let mut key = SealingKey::new(1, &[0x24; 32]); // wrong key: fails authentication
        let mut d = Vec::new();
        key.seal_into(&body(1400), &mut d).unwrap();
        b.iter(|| black_box(ring.open(black_box(&d), 0).is_err()))
    });
    g.finish();
}

fn cbc(c: &mut Criterion) {
    let keys = LegacyKeys {
        even: CipherKeySet {
            key: KEY,
            iv: [7; 16],
        },
        odd: CipherKeySet {
            key: [9; 32],
            iv: [8; 16],
        },
        index: 0,
    };
    let p = body(1400);
    let mut g = c.benchmark_group("legacy_cbc");
    g.throughput(Throughput::Bytes(1400));
    g.bench_function("encrypt_data_packet/1400", |b| {
        b.iter(|| black_box(encrypt_data_packet(black_box(&p), &keys).unwrap().len()))
    });
    g.finish();
}

criterion_group!(benches, seal, open, replay, cbc);
criterion_main!(benches);
