//! Reconnect timing after a publisher restart (test-plan T6, client side; issue 16): the
//! in-process publisher binds port 0, 30 library subscribers stream from it, it is stopped and
//! a new one is started on the same port number; every subscriber must be receiving again
//! within 2 s of the restart. The distribution of the resume times is printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sttp_control::client::{ClientEvent, Subscriber, SubscriberConfig};
use sttp_tests::TestPublisher;

const SUBSCRIBERS: usize = 30;
const SIGNALS: usize = 10;

/// Per subscriber: the time of the first measurement after each connect.
type FirstData = Arc<Mutex<Vec<Instant>>>;

fn spawn_subscriber(addr: String) -> (FirstData, tokio::task::JoinHandle<()>) {
    let first: FirstData = Arc::default();
    let record = first.clone();
    let task = tokio::spawn(async move {
        let mut config = SubscriberConfig::new(addr);
        // The defaults: 100 ms doubling with ±20 % jitter; nothing tuned for the test.
        config.session.settings.filter_expression = "FILTER ActiveMeasurements WHERE True".into();
        let mut sub = Subscriber::start(config);
        let mut fresh = true;
        while let Some(ev) = sub.next_event().await {
            match ev {
                ClientEvent::Connected { .. } => fresh = true,
                ClientEvent::Measurements(_) if fresh => {
                    fresh = false;
                    record.lock().unwrap().push(Instant::now());
                }
                _ => {}
            }
        }
    });
    (first, task)
}

async fn all_receiving(
    subs: &[(FirstData, tokio::task::JoinHandle<()>)],
    after: Instant,
    limit: Duration,
) -> Vec<Option<Duration>> {
    let deadline = Instant::now() + limit;
    loop {
        let resumed: Vec<Option<Duration>> = subs
            .iter()
            .map(|(f, _)| {
                f.lock()
                    .unwrap()
                    .iter()
                    .find(|t| **t >= after)
                    .map(|t| t.duration_since(after))
            })
            .collect();
        if resumed.iter().all(Option::is_some) || Instant::now() >= deadline {
            return resumed;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_is_receiving_again_within_2_s_of_a_publisher_restart() {
    let mut tp = TestPublisher::start(SIGNALS).await;
    let addr = tp.publisher().local_addr();
    tp.stream(Duration::from_millis(20), 0);
    let subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| spawn_subscriber(addr.to_string()))
        .collect();
    let t0 = Instant::now();
    let first = all_receiving(&subs, t0, Duration::from_secs(10)).await;
    assert!(
        first.iter().all(Option::is_some),
        "not all subscribed at start: {first:?}"
    );

    // Down 50 ms (a quick restart: the first retries are refused) and 700 ms (the backoff has
    // grown to 0.4 s by then).
    for (round, down_ms) in [(0, 50u64), (1, 700)] {
        // Stop: every session is lost; the subscribers start retrying at once.
        let next_frame = tp.current_frame();
        tp.shutdown().await;
        let lost = Instant::now();
        // The publisher is down for a moment (the first retries are refused), then back on
        // the same port number.
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        tp = TestPublisher::start_on(addr, SIGNALS).await;
        let restarted = Instant::now();
        tp.stream(Duration::from_millis(20), next_frame + 1000);
        let resumed = all_receiving(&subs, restarted, Duration::from_secs(5)).await;
        let mut ms: Vec<f64> = resumed
            .iter()
            .map(|d| d.map_or(f64::INFINITY, |d| d.as_secs_f64() * 1000.0))
            .collect();
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        eprintln!(
            "round {round}: {SUBSCRIBERS} subscribers resumed after the restart (down {:.0} ms): min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
            restarted.duration_since(lost).as_secs_f64() * 1000.0,
            pct(0.0),
            pct(0.5),
            pct(0.9),
            pct(1.0)
        );
        assert!(
            pct(1.0) <= 2000.0,
            "round {round}: not every subscriber was receiving within 2 s: {ms:?}"
        );
    }
    for (_, task) in subs {
        task.abort();
    }
    tp.shutdown().await;
}
