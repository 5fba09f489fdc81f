//! The engine end to end in memory: points published by a source come out of a subscription's
//! sink as frames that the wire decoders turn back into exactly those points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use sttp_dataplane::encoder::{EncoderSettings, Format};
use sttp_dataplane::sink::VecSink;
use sttp_dataplane::{Delivery, Engine, EngineConfig, SourcePoint, SubscriptionSpec};
use sttp_wire::compact::{self, BaseTimes, CompactOptions};
use sttp_wire::packet::DataPacketHeader;
use sttp_wire::{tssc, Measurement};

/// Splits framed responses into (code, payload).
fn responses(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let body = &bytes[at + 4..at + 4 + len];
        let plen = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
        assert_eq!(plen + 6, len, "inner length must match the frame");
        out.push((body[0], body[6..].to_vec()));
        at += 4 + len;
    }
    assert_eq!(at, bytes.len(), "no trailing partial frame");
    out
}

/// Decodes every DataPacket, returning the measurements and the cache flags seen.
fn decode(bytes: &[u8], format: Format) -> (Vec<Measurement>, Vec<usize>, Vec<i64>) {
    let mut tssc = tssc::PacketDecoder::new();
    let mut base: Option<BaseTimes> = None;
    let mut out = Vec::new();
    let mut caches = Vec::new();
    let mut starts = Vec::new();
    for (code, payload) in responses(bytes) {
        match code {
            0x82 => {
                let (h, body) = DataPacketHeader::decode(&payload).unwrap();
                caches.push(h.cache_index());
                match format {
                    Format::Tssc => {
                        assert!(h.is_tssc());
                        let r = tssc.decode(body, &mut out).unwrap();
                        assert!(matches!(r, tssc::PacketOutcome::Decoded));
                    }
                    Format::Compact => {
                        let opts = CompactOptions {
                            include_time: true,
                            millisecond_resolution: false,
                        };
                        compact::decode(body, h.count as usize, opts, base.as_ref(), &mut out)
                            .unwrap();
                    }
                }
            }
            0x84 => base = Some(BaseTimes::decode(&payload).unwrap()),
            0x86 => starts.push(i64::from_be_bytes(payload[..8].try_into().unwrap())),
            other => panic!("unexpected response 0x{other:02X}"),
        }
    }
    (out, caches, starts)
}

fn point(signal: u32, timestamp: i64, value: f32) -> SourcePoint {
    SourcePoint {
        signal,
        timestamp,
        value,
        flags: 0,
    }
}

fn wait_for(sink: &VecSink, bytes: usize) {
    let until = Instant::now() + Duration::from_secs(5);
    while sink.frames.lock().unwrap().len() < bytes && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run(format: Format, frames: usize, signals: u32) {
    let engine = Engine::start(EngineConfig {
        workers: 2,
        queue_depth: 64,
        ..EngineConfig::default()
    })
    .unwrap();
    let sink = VecSink::default();
    let sub = engine.add_subscription(SubscriptionSpec {
        sink: Box::new(sink.clone()),
    });
    // Subscribe to the odd signals only, runtime ids dense from 0.
    let routes: Vec<(u32, i32)> = (0..signals)
        .filter(|s| s % 2 == 1)
        .enumerate()
        .map(|(i, s)| (s, i as i32))
        .collect();
    sub.activate(
        routes.clone(),
        1,
        EncoderSettings {
            format,
            ..EncoderSettings::default()
        },
        Delivery::Tcp,
    );
    std::thread::sleep(Duration::from_millis(50));
    let t0 = 638_000_000_000_000_000i64;
    let mut expected = Vec::new();
    for f in 0..frames {
        let batch: Vec<SourcePoint> = (0..signals)
            .map(|s| SourcePoint {
                signal: s,
                timestamp: t0 + f as i64 * 333_333,
                value: s as f32 * 10.0 + f as f32 * 0.5,
                flags: if f % 7 == 0 { 0x1000 } else { 0 },
            })
            .collect();
        for p in &batch {
            if let Some(&(_, rid)) = routes.iter().find(|(s, _)| *s == p.signal) {
                expected.push(Measurement {
                    runtime_id: rid,
                    timestamp: p.timestamp,
                    value: p.value,
                    flags: p.flags,
                });
            }
        }
        assert_eq!(engine.source().publish(&batch), 0);
    }
    // Wait until every point has been flushed.
    let until = Instant::now() + Duration::from_secs(10);
    while sub.stats().snapshot().points < expected.len() as u64 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for(&sink, 1);
    let bytes = sink.frames.lock().unwrap().clone();
    let (got, caches, starts) = decode(&bytes, format);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            g.bit_eq(e)
                || format == Format::Compact
                    && g.runtime_id == e.runtime_id
                    && g.value == e.value
                    && g.timestamp == e.timestamp,
            "{g:?} != {e:?}"
        );
    }
    assert!(
        caches.iter().all(|&c| c == 1),
        "every packet names cache slot 1"
    );
    assert_eq!(
        starts,
        vec![t0],
        "one DataStartTime with the first timestamp"
    );
    let stats = sub.stats().snapshot();
    assert_eq!(stats.points, expected.len() as u64);
    assert_eq!(stats.bytes, bytes.len() as u64);
    drop(sub);
    engine.shutdown();
}

#[test]
fn tssc_subscription_receives_exactly_its_routed_points() {
    run(Format::Tssc, 200, 50);
}

#[test]
fn compact_subscription_receives_exactly_its_routed_points() {
    run(Format::Compact, 200, 50);
}

#[test]
fn full_sink_drops_count_and_restart_the_tssc_stream() {
    let engine = Engine::start(EngineConfig::default()).unwrap();
    let sink = VecSink {
        capacity: Some(64 * 1024),
        ..VecSink::default()
    };
    let sub = engine.add_subscription(SubscriptionSpec {
        sink: Box::new(sink.clone()),
    });
    sub.activate(
        (0..100).map(|s| (s, s as i32)).collect(),
        0,
        EncoderSettings::default(),
        Delivery::Tcp,
    );
    std::thread::sleep(Duration::from_millis(50));
    for f in 0..2000i64 {
        let batch: Vec<SourcePoint> = (0..100)
            .map(|s| point(s, f * 10_000, (s as f32).sin() * f as f32))
            .collect();
        engine.source().publish(&batch);
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = sub.stats().snapshot();
        if s.points + s.dropped_queue_full >= 200_000 || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = sub.stats().snapshot();
    assert_eq!(
        s.points + s.dropped_queue_full,
        200_000,
        "every point is either sent or counted as dropped"
    );
    assert!(s.dropped_queue_full > 0 && s.stream_resets > 0);
    // What was accepted still decodes: the accepted bytes start with a seq-0 packet.
    let bytes = sink.frames.lock().unwrap().clone();
    let (got, _, _) = decode(&bytes, Format::Tssc);
    assert_eq!(got.len() as u64, s.points);
}

#[test]
fn nan_filter_and_time_reasonability() {
    use sttp_dataplane::encoder::Throttle;
    let engine = Engine::start(EngineConfig::default()).unwrap();
    let sink = VecSink::default();
    let sub = engine.add_subscription(SubscriptionSpec {
        sink: Box::new(sink.clone()),
    });
    sub.activate(
        vec![(0, 0), (1, 1), (2, 2)],
        0,
        EncoderSettings {
            nan_filter: true,
            ..EncoderSettings::default()
        },
        Delivery::Tcp,
    );
    std::thread::sleep(Duration::from_millis(50));
    let t = 638_000_000_000_000_000i64;
    engine.source().publish(&[
        point(0, t, f32::NAN),
        point(1, t, 1.0),
        point(2, t, f32::NAN),
    ]);
    let until = Instant::now() + Duration::from_secs(5);
    while sub.stats().snapshot().dropped_nan < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for(&sink, 1);
    std::thread::sleep(Duration::from_millis(50));
    let (got, _, _) = decode(&sink.frames.lock().unwrap().clone(), Format::Tssc);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, 1.0);
    assert_eq!(sub.stats().snapshot().dropped_nan, 2);

    // Throttled with the reasonability check: a point 20 s older than the newest becomes NaN + BadTime.
    let sink2 = VecSink::default();
    let sub2 = engine.add_subscription(SubscriptionSpec {
        sink: Box::new(sink2.clone()),
    });
    let throttle = Throttle {
        interval: Duration::from_millis(100),
        reasonability: Some((10 * 10_000_000, 5 * 10_000_000)),
    };
    sub2.activate(
        vec![(0, 0), (1, 1)],
        0,
        EncoderSettings {
            throttle: Some(throttle),
            ..EncoderSettings::default()
        },
        Delivery::Tcp,
    );
    std::thread::sleep(Duration::from_millis(50));
    engine.source().publish(&[
        point(0, t - 20 * 10_000_000, 5.0),
        point(1, t, 1.0),
        point(1, t, 2.0),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let (got, _, _) = decode(&sink2.frames.lock().unwrap().clone(), Format::Tssc);
    let first: Vec<_> = got.iter().take(2).collect();
    assert_eq!(
        first.len(),
        2,
        "one snapshot holds the latest value of each signal: {got:?}"
    );
    assert!(
        first[0].value.is_nan() && first[0].flags & 0x0001_0000 != 0,
        "unreasonable time marked: {:?}",
        first[0]
    );
    assert_eq!(
        (first[1].value, first[1].flags),
        (2.0, 0),
        "latest value wins"
    );
}

/// A sealer that prefixes a marker and flips every bit, so the test can tell sealed datagrams
/// apart and undo them.
struct Flip;

impl sttp_dataplane::Sealer for Flip {
    fn seal(&mut self, body: &[u8], out: &mut Vec<u8>) -> bool {
        out.push(0xA5);
        out.extend(body.iter().map(|b| !b));
        true
    }
    fn overhead(&self) -> usize {
        1
    }
    fn describe(&self) -> String {
        "flip".into()
    }
}

/// Compact points over UDP: every datagram is one bare DataPacket response within the MTU,
/// DataStartTime goes to the TCP sink, and every point arrives (loopback, paced bursts).
fn run_udp(choice: sttp_dataplane::io::BackendChoice, sealed: bool) {
    let engine = Engine::start(EngineConfig {
        workers: 1,
        backend: sttp_dataplane::io::BackendOptions {
            choice,
            ..Default::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let dest = rx.local_addr().unwrap();
    let tcp = VecSink::default();
    let sub = engine.add_subscription(SubscriptionSpec {
        sink: Box::new(tcp.clone()),
    });
    if sealed {
        sub.set_sealer(Some(Box::new(Flip)));
    }
    let signals = 50u32;
    let routes: Vec<(u32, i32)> = (0..signals).map(|s| (s, s as i32)).collect();
    sub.activate(
        routes,
        0,
        EncoderSettings {
            format: Format::Tssc, // a UDP delivery must fall back to compact
            use_base_time_offsets: false,
            ..EncoderSettings::default()
        },
        Delivery::Udp { dest },
    );
    std::thread::sleep(Duration::from_millis(50));
    let t0 = 638_000_000_000_000_000i64;
    let frames = 200usize;
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = rx.recv(&mut buf) {
            let mut d = buf[..n].to_vec();
            sizes.push(n);
            if sealed {
                assert_eq!(d[0], 0xA5);
                d = d[1..].iter().map(|b| !b).collect();
            }
            assert_eq!(d[0], 0x82, "only data packets travel over UDP");
            let payload = &d[6..];
            let (header, body) = DataPacketHeader::decode(payload).unwrap();
            assert!(!header.is_tssc());
            let opts = CompactOptions {
                include_time: true,
                millisecond_resolution: false,
            };
            compact::decode(body, header.count as usize, opts, None, &mut got).unwrap();
        }
        (got, sizes)
    });
    for f in 0..frames {
        let batch: Vec<SourcePoint> = (0..signals)
            .map(|s| point(s, t0 + f as i64 * 333_333, s as f32 + f as f32))
            .collect();
        assert_eq!(engine.source().publish(&batch), 0);
        if f % 20 == 19 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let (got, sizes) = receiver.join().unwrap();
    assert_eq!(got.len(), frames * signals as usize);
    for (i, m) in got.iter().enumerate() {
        let (f, s) = (i / signals as usize, (i % signals as usize) as i32);
        assert_eq!(m.runtime_id, s);
        assert_eq!(m.timestamp, t0 + f as i64 * 333_333);
        assert_eq!(m.value, s as f32 + f as f32);
    }
    assert!(sizes.iter().all(|&n| n + 28 <= 1500), "{sizes:?}");
    let stats = sub.stats().snapshot();
    assert_eq!(stats.points, (frames * signals as usize) as u64);
    assert_eq!(stats.datagrams, sizes.len() as u64);
    let workers = engine.worker_stats();
    assert_eq!(workers[0].datagrams_sent, sizes.len() as u64);
    assert!(workers[0].backend.is_some());
    // DataStartTime went over TCP, not UDP.
    let tcp_bytes = tcp.frames.lock().unwrap().clone();
    assert_eq!(tcp_bytes.get(4), Some(&0x86));
}

#[test]
fn udp_delivery_with_sendmmsg() {
    run_udp(sttp_dataplane::io::BackendChoice::Sendmmsg, false);
}

#[test]
fn udp_delivery_with_io_uring_and_a_sealer() {
    run_udp(sttp_dataplane::io::BackendChoice::IoUring, true);
}

#[test]
fn udp_delivery_sealed_with_sendmmsg() {
    run_udp(sttp_dataplane::io::BackendChoice::Sendmmsg, true);
}
