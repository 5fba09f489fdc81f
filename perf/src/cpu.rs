//! CPU time of a process from `/proc/PID/stat`, to report a process's CPU share over a window.

use std::time::Instant;

/// `USER_HZ`: the unit of `/proc/PID/stat` times. The kernel fixes it at 100 in its user ABI on
/// every architecture this project runs on, independent of the kernel's internal `HZ`.
const USER_HZ: f64 = 100.0;

/// One reading of a process's CPU time and the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    cpu_secs: f64,
    at: Instant,
}

/// utime + stime of `pid` (None = this process) in seconds.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    stat_seconds(&std::fs::read_to_string(path).ok()?)
}

/// utime + stime in seconds from the text of a `/proc/…/stat` file.
fn stat_seconds(text: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' field 3 (state) is index 0, so utime (field 14) is index 11 and stime index 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

impl CpuSample {
    /// Reads `pid`'s CPU time now.
    pub fn take(pid: Option<u32>) -> Option<Self> {
        Some(Self {
            cpu_secs: cpu_seconds(pid)?,
            at: Instant::now(),
        })
    }

    /// CPU share between `self` and `later` in percent of one core (200 % = both cores busy).
    pub fn percent_until(&self, later: &CpuSample) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (later.cpu_secs - self.cpu_secs) / wall * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's CPU seconds (other tests run in parallel threads of the same process).
    fn thread_seconds() -> f64 {
        stat_seconds(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()).unwrap()
    }

    #[test]
    fn a_busy_loop_shows_cpu_time() {
        assert!(CpuSample::take(None).is_some());
        let before = thread_seconds();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let wall = start.elapsed().as_secs_f64();
        let pct = (thread_seconds() - before) / wall * 100.0;
        // A spinning thread uses at most one core (ticks are 10 ms: ±4 % over 300 ms) and, even on
        // a loaded machine, more than nothing.
        assert!(pct > 0.0 && pct < 105.0, "busy loop showed {pct} %");
        assert!(cpu_seconds(Some(u32::MAX)).is_none());
        // A command name with spaces and parentheses does not shift the fields.
        let stat = "7 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(stat_seconds(stat), Some(3.0));
    }
}
