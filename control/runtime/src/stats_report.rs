//! The publisher's statistics as one JSON document, for operators and the perf harness
//! (`sttp serve --stats-file FILE`, rewritten every stats interval).
//!
//! The file is written to a temporary name and renamed over the old one, so a reader never
//! sees half a document.

use crate::server::Publisher;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// Every counter of `publisher` now, with the wall-clock time in Unix milliseconds.
pub fn snapshot(publisher: &Publisher) -> Value {
    let source = publisher.source();
    let ring = source.stats();
    let p = publisher.stats();
    let subscriptions: Vec<Value> = publisher
        .subscription_stats()
        .into_iter()
        .map(|(peer, s)| {
            json!({
                "peer": peer.to_string(),
                "points": s.points,
                "packets": s.packets,
                "bytes": s.bytes,
                "datagrams": s.datagrams,
                "dropped": {
                    "queue_full": s.dropped_queue_full,
                    "nan_filter": s.dropped_nan,
                    "seal_failures": s.seal_failures,
                },
                "stream_resets": s.stream_resets,
                "key_rotations": s.key_rotations,
            })
        })
        .collect();
    let workers: Vec<Value> = publisher
        .worker_stats()
        .into_iter()
        .map(|w| {
            json!({
                "index": w.index,
                "core": w.core,
                "backend": w.backend,
                "subscriptions": w.subscriptions,
                "turns": w.turns,
                "batches": w.batches,
                "points_in": w.points_in,
                "datagrams_sent": w.datagrams_sent,
                "bytes_sent": w.bytes_sent,
                "dropped": {
                    "send_would_block": w.send_would_block,
                    "send_errors": w.send_errors,
                },
                "submissions": w.submissions,
            })
        })
        .collect();
    let commands = match publisher.command_pool_stats() {
        Some(c) => json!({
            "pool": true,
            "jobs": c.jobs.load(Relaxed),
            "cpu_us": c.cpu_us.load(Relaxed),
            "max_job_cpu_us": c.max_job_cpu_us.load(Relaxed),
            "max_wait_us": c.max_wait_us.load(Relaxed),
            "cpu_budget_closes": p.cpu_budget_closes.load(Relaxed),
        }),
        None => json!({ "pool": false, "cpu_budget_closes": p.cpu_budget_closes.load(Relaxed) }),
    };
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "time_unix_ms": unix_ms,
        "listen": publisher.local_addr().to_string(),
        "source": {
            "batches": ring.batches.load(Relaxed),
            "points": ring.points.load(Relaxed),
            "overruns": ring.overruns.load(Relaxed),
        },
        "connections": {
            "open": p.connections_open.load(Relaxed),
            "accepted": p.connections_accepted.load(Relaxed),
            // Every refusal before a session started, whatever the reason (by kind below).
            "refused": p.closes.refused_total(),
            "refused_by_kind": counts(p.closes.refusals()),
            "closed_by_reason": counts(p.closes.closes()),
            "protocol_closes": p.protocol_closes.load(Relaxed),
            "throttle_incidents": p.throttle_incidents.load(Relaxed),
            "dead_peer_closes": p.dead_peer_closes.load(Relaxed),
        },
        "commands": commands,
        "workers": workers,
        "subscriptions": subscriptions,
    })
}

fn counts(pairs: Vec<(&'static str, u64)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect(),
    )
}

/// Writes `value` to `path` atomically (temporary file + rename).
pub fn write_atomically(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
