//! The UDP ceiling sender: pre-built datagrams of the measured size, through the same batched
//! backend the data plane uses (`sttp_dataplane::io::open` with `Auto` + GSO: io_uring or
//! sendmmsg), as fast as the kernel takes them. Each turn queues one full GSO group per
//! destination, the best case for the kernel path (design.md "Measuring performance").

use crate::cpu::CpuSample;
use crate::raw::CeilingOpts;
use crate::report::CeilingReport;
use std::net::SocketAddr;
use std::time::Instant;
use sttp_dataplane::io::{
    self, BackendOptions, OutDatagrams, SendReport, MAX_GROUP_BYTES, MAX_GROUP_SEGMENTS,
};

/// Sends for `opts.seconds` to every address of `opts.dests` (one address with `subscribers` >
/// 1: that many consecutive ports from it).
pub fn run(opts: &CeilingOpts) -> anyhow::Result<CeilingReport> {
    if opts.size == 0 || opts.size > MAX_GROUP_BYTES {
        anyhow::bail!(
            "datagram size {} is outside 1..={MAX_GROUP_BYTES}",
            opts.size
        );
    }
    let mut backend = io::open(&BackendOptions::default())
        .map_err(|e| anyhow::anyhow!("cannot open a UDP backend: {e}"))?;
    let dests: Vec<SocketAddr> = match opts.dests.as_slice() {
        [] => anyhow::bail!("no destination"),
        [one] => (0..opts.subscribers.max(1))
            .map(|k| {
                let mut d = *one;
                d.set_port(one.port().wrapping_add(k as u16));
                d
            })
            .collect(),
        many => many.to_vec(),
    };
    let datagram: Vec<u8> = (0..opts.size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let per_group = MAX_GROUP_SEGMENTS.min(MAX_GROUP_BYTES / opts.size).max(1);
    let mut out = OutDatagrams::new();
    let mut total = SendReport::default();
    let cpu_start = CpuSample::take(None);
    let start = Instant::now();
    while start.elapsed() < opts.seconds {
        for dest in &dests {
            for _ in 0..per_group {
                out.push(*dest, &datagram);
            }
        }
        let report = backend.send(&mut out);
        out.clear();
        if report.would_block > 0 {
            // The socket buffer is full: let the receivers drain it instead of spinning on drops.
            std::thread::yield_now();
        }
        total += report;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(CeilingReport {
        transport: "udp".into(),
        backend: backend.kind().to_string(),
        gso: backend.gso(),
        size: opts.size,
        sent: total.datagrams,
        bytes: total.bytes,
        seconds,
        cpu_percent: cpu_start
            .zip(CpuSample::take(None))
            .map_or(0.0, |(a, b)| a.percent_until(&b)),
    })
}
