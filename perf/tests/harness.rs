//! The harness's own processes in one test process: a paced publisher and validating receivers
//! over loopback. Proves that a real stream passes validation with latency samples for every
//! counted point, and (negative control) that the same stream fails validation when the
//! receiver's idea of the subscribed set is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use sttp_perf::publish::{self, PublishOpts};
use sttp_perf::receive::{self, ReceiveOpts};

/// Starts a publisher of `signals` signals at 100 k points/s for at most 8 s; returns its
/// address and the thread that yields its report.
fn start_publisher(
    signals: u32,
) -> (
    String,
    std::thread::JoinHandle<sttp_perf::report::PublisherReport>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = PublishOpts {
        listen: "127.0.0.1:0".parse().unwrap(),
        signals,
        rate: Some(100_000.0),
        workers: 1,
        subscriber_queue_frames: 4096,
        max_duration: Duration::from_secs(8),
        stop_on_stdin_eof: false,
        mtu: None,
        flush_deadline: None,
    };
    let thread = std::thread::spawn(move || {
        publish::run(&opts, |addr| tx.send(addr).unwrap()).expect("publisher runs")
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    (addr.to_string(), thread)
}

fn receive_opts(publisher: String, signals: u32, subscribers: u32) -> ReceiveOpts {
    ReceiveOpts {
        publisher,
        subscribers,
        signals,
        tssc: true,
        warmup: Duration::from_millis(1500),
        duration: Duration::from_millis(2000),
        publisher_pid: Some(std::process::id()),
        udp: None,
    }
}

#[test]
fn a_real_stream_validates_and_a_wrong_signal_set_is_caught() {
    let (addr, publisher) = start_publisher(500);
    let good = receive::run(&receive_opts(addr.clone(), 500, 2)).unwrap();
    assert_eq!(good.subscribers_with_data, 2, "{good:?}");
    assert!(good.points > 0, "{good:?}");
    assert_eq!(
        (good.bad_values, good.out_of_order, good.unknown_signals),
        (0, 0, 0),
        "{good:?}"
    );
    assert_eq!(good.latency.samples, good.points);
    // Two subscribers of a paced 100 k points/s stream: no more than the pacing allows over the
    // window (+ 1 s of slack for a source catching up after a stall on a loaded machine).
    let most = 2.0 * 100_000.0 * (good.window_secs + 1.0);
    assert!((good.points as f64) <= most, "{good:?}");
    assert!(good.publisher_cpu_percent.is_some());

    // Negative control: the receiver believes only 250 signals are subscribed.
    let bad = receive::run(&receive_opts(addr, 250, 1)).unwrap();
    assert!(bad.unknown_signals > 0, "{bad:?}");
    assert_eq!(bad.bad_values, 0);

    let report = publisher.join().unwrap();
    assert!(report.points_published > 0);
    assert!(report.subscriptions >= 3, "{report:?}");
    assert!(
        report.points_sent > 0 && report.bytes_sent > 0,
        "{report:?}"
    );
}

#[test]
fn encrypted_udp_stream_validates_and_counts_datagrams() {
    let (addr, publisher) = start_publisher(300);
    // Port 0: the subscriber binds a free port itself and names it in its subscribe request.
    let opts = ReceiveOpts {
        tssc: false,
        udp: Some((0, sttp_control::client::UdpCipherChoice::AesGcm)),
        ..receive_opts(addr, 300, 1)
    };
    let got = receive::run(&opts).unwrap();
    assert_eq!(got.transport, "udp");
    assert_eq!(got.subscribers_with_data, 1, "{got:?}");
    assert!(got.points > 0 && got.datagrams > 0, "{got:?}");
    assert!(got.bytes > got.datagrams, "{got:?}");
    assert_eq!(
        (got.bad_values, got.out_of_order, got.unknown_signals),
        (0, 0, 0),
        "{got:?}"
    );
    assert_eq!((got.udp_auth_failures, got.udp_replays), (0, 0), "{got:?}");
    let report = publisher.join().unwrap();
    assert!(report.datagrams_sent > 0, "{report:?}");
}
