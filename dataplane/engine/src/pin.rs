//! Explicit worker pinning (design.md habit 7): worker `i` runs on core `i % cores`, so a
//! worker keeps its caches, its io_uring and its sockets' softirq work on one core.

use core_affinity::CoreId;
use std::sync::OnceLock;

/// The cores this process may run on, read once. The kernel reports the calling *thread's*
/// affinity, which shrinks to one core once that thread is pinned, so the set is captured at the
/// first call: call [`available_cores`] from an unpinned thread (the engine does, before it
/// spawns its workers).
fn allowed_cores() -> &'static [CoreId] {
    static CORES: OnceLock<Vec<CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Number of cores this process may run on (at least 1).
pub fn available_cores() -> usize {
    match allowed_cores().len() {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// Pins the calling thread to core `worker_index % cores` and returns that core's id, or
/// `None` (with a warning) when the core list cannot be read or the affinity cannot be set, in
/// which case the thread keeps running unpinned.
pub fn pin_current_thread(worker_index: usize) -> Option<usize> {
    let cores = allowed_cores();
    if cores.is_empty() {
        tracing::warn!(
            "worker {worker_index}: cannot read this process's CPU set; running unpinned"
        );
        return None;
    }
    let core = *cores.get(worker_index % cores.len())?;
    if core_affinity::set_for_current(core) {
        Some(core.id)
    } else {
        tracing::warn!(
            "worker {worker_index}: pinning to core {} failed; running unpinned",
            core.id
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_robin_over_the_allowed_cores() {
        let cores = available_cores();
        assert!(cores >= 1);
        let allowed: Vec<usize> = allowed_cores().iter().map(|c| c.id).collect();
        assert_eq!(allowed.len(), cores);
        // On a thread of its own, so the test runner's thread keeps its affinity.
        let pinned = std::thread::spawn(move || {
            (0..cores + 1)
                .map(pin_current_thread)
                .collect::<Vec<Option<usize>>>()
        })
        .join()
        .unwrap();
        assert_eq!(pinned.len(), cores + 1);
        for (i, core) in pinned.iter().enumerate() {
            assert_eq!(*core, allowed.get(i % cores).copied(), "worker {i}");
        }
        // The pinned thread is gone; this thread still sees every allowed core.
        assert_eq!(
            core_affinity::get_core_ids().map(|ids| ids.len()),
            Some(cores)
        );
    }
}
