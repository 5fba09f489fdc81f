//! The command pool: where commands that can cost milliseconds of CPU run, off the async
//! threads that accept connections and write data (docs/hardening.md, "CPU isolation").
//!
//! A Subscribe evaluates a filter over the whole metadata, a MetadataRefresh serialises and
//! gzips it, and a policy reload re-evaluates access filters. Bounded as each of them is
//! (docs/limits.md), a few hostile connections repeating them would still keep the async
//! threads busy if they ran there, and every other session's writer and the accept loop would
//! wait. So the connection task hands such a turn of commands to this pool and awaits the result:
//!
//! * **bounded**: a fixed number of threads; each connection has at most one job queued or
//!   running (it awaits it), so the queue is bounded by the number of connections;
//! * **fair between source addresses**: jobs wait in one queue per source IP, and a free thread
//!   takes the job of the source that used the least CPU recently (usage decays with a half-life
//!   of [`USAGE_HALF_LIFE`]), so a new subscriber's commands go before those of a source that
//!   has been burning CPU;
//! * **lower CPU priority**: pool threads run at nice [`POOL_NICE`], so under contention the
//!   data writers, the accept loop and the data-plane workers keep the CPU;
//! * **measured**: every job's thread CPU time comes back with its result, for the
//!   per-connection [`CpuBudget`] and the statistics.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How fast a source's recorded CPU usage is forgotten.
pub const USAGE_HALF_LIFE: Duration = Duration::from_secs(10);
/// The nice value of pool threads (0 = normal, 19 = lowest priority).
pub const POOL_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool is shut down; the job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolClosed;

/// Counters of the pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Jobs run.
    pub jobs: AtomicU64,
    /// CPU time of all jobs, µs.
    pub cpu_us: AtomicU64,
    /// CPU time of the most expensive job, µs.
    pub max_job_cpu_us: AtomicU64,
    /// Longest time a job waited in the queue, µs.
    pub max_wait_us: AtomicU64,
}

/// Per-source queues, and the choice of which source runs next. Sans-clock: time is an argument.
struct FairQueue<J> {
    sources: HashMap<IpAddr, SourceQueue<J>>,
    queued: usize,
}

impl<J> Default for FairQueue<J> {
    fn default() -> Self {
        Self {
            sources: HashMap::new(),
            queued: 0,
        }
    }
}

struct SourceQueue<J> {
    jobs: VecDeque<(J, Instant)>,
    /// CPU seconds used, decayed to `updated`.
    usage: f64,
    updated: Instant,
}

fn decay(usage: f64, since: Duration) -> f64 {
    usage * 0.5f64.powf(since.as_secs_f64() / USAGE_HALF_LIFE.as_secs_f64())
}

impl<J> FairQueue<J> {
    fn push(&mut self, source: IpAddr, job: J, now: Instant) {
        let q = self.sources.entry(source).or_insert_with(|| SourceQueue {
            jobs: VecDeque::new(),
            usage: 0.0,
            updated: now,
        });
        q.jobs.push_back((job, now));
        self.queued += 1;
    }

    /// The next job: the oldest of the source with the least decayed usage.
    fn pop(&mut self, now: Instant) -> Option<(IpAddr, J, Instant)> {
        let (&source, _) = self
            .sources
            .iter()
            .filter(|(_, q)| !q.jobs.is_empty())
            .min_by(|(_, a), (_, b)| {
                let ua = decay(a.usage, now.saturating_duration_since(a.updated));
                let ub = decay(b.usage, now.saturating_duration_since(b.updated));
                ua.total_cmp(&ub)
            })?;
        let q = self.sources.get_mut(&source)?;
        let (job, queued_at) = q.jobs.pop_front()?;
        self.queued = self.queued.saturating_sub(1);
        Some((source, job, queued_at))
    }

    /// Charges `cpu` to `source`; forgets sources with nothing queued and little usage left.
    fn charge(&mut self, source: IpAddr, cpu: Duration, now: Instant) {
        if let Some(q) = self.sources.get_mut(&source) {
            q.usage = decay(q.usage, now.saturating_duration_since(q.updated)) + cpu.as_secs_f64();
            q.updated = now;
        }
        if self.sources.len() > 1024 {
            self.sources.retain(|_, q| {
                !q.jobs.is_empty()
                    || decay(q.usage, now.saturating_duration_since(q.updated)) > 1e-3
            });
        }
    }
}

struct Inner {
    state: Mutex<State>,
    ready: Condvar,
    stats: PoolStats,
}

struct State {
    queue: FairQueue<Job>,
    closed: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded pool of low-priority threads for expensive commands.
pub struct CommandPool {
    inner: Arc<Inner>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for CommandPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandPool")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

/// The calling thread's CPU time.
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

impl CommandPool {
    /// Starts `threads` pool threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                queue: FairQueue::default(),
                closed: false,
            }),
            ready: Condvar::new(),
            stats: PoolStats::default(),
        });
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let inner = inner.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("sttp-cmd-{i}"))
                    .spawn(move || run_thread(&inner))?,
            );
        }
        Ok(Self {
            inner,
            threads: handles,
        })
    }

    /// The pool's counters.
    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    /// Runs `job` on a pool thread, queued behind jobs of sources that used less CPU, and
    /// returns its result with the CPU time it took.
    pub async fn run<R: Send + 'static>(
        &self,
        source: IpAddr,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<(R, Duration), PoolClosed> {
        let (tx, rx) = oneshot::channel();
        let wrapped: Job = Box::new(move || {
            let start = thread_cpu_time();
            let out = job();
            let cpu = thread_cpu_time().saturating_sub(start);
            let _ = tx.send((out, cpu));
        });
        {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(PoolClosed);
            }
            state.queue.push(source, wrapped, Instant::now());
        }
        self.inner.ready.notify_one();
        rx.await.map_err(|_| PoolClosed)
    }

    /// Jobs waiting now.
    pub fn queued(&self) -> usize {
        self.inner.lock().queue.queued
    }
}

impl Drop for CommandPool {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.ready.notify_all();
        // Threads finish the job they run and exit; queued jobs are dropped (their senders
        // with them, so the waiting connections see PoolClosed).
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run_thread(inner: &Inner) {
    // Lower this thread's priority (Linux applies nice per thread). Failure only costs the
    // isolation under contention, so it is logged and the thread goes on.
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), POOL_NICE)
    {
        tracing::debug!(error = %e, "command pool: cannot lower thread priority");
    }
    loop {
        let (source, job, queued_at) = {
            let mut state = inner.lock();
            loop {
                if state.closed {
                    state.queue = FairQueue::default();
                    return;
                }
                if let Some(next) = state.queue.pop(Instant::now()) {
                    break next;
                }
                state = inner.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let waited = queued_at.elapsed();
        let start = thread_cpu_time();
        job();
        let cpu = thread_cpu_time().saturating_sub(start);
        inner.lock().queue.charge(source, cpu, Instant::now());
        let stats = &inner.stats;
        stats.jobs.fetch_add(1, Relaxed);
        let cpu_us = u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX);
        stats.cpu_us.fetch_add(cpu_us, Relaxed);
        stats.max_job_cpu_us.fetch_max(cpu_us, Relaxed);
        stats.max_wait_us.fetch_max(
            u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }
}

/// A connection's CPU allowance for commands: a bucket of `burst` CPU time, refilled at `rate`
/// CPU seconds per second. Sans-clock.
#[derive(Debug, Clone)]
pub struct CpuBudget {
    burst: Duration,
    rate: f64,
    tokens: f64,
    updated: Option<Instant>,
    used: Duration,
}

impl CpuBudget {
    /// A full bucket; `burst` zero turns the budget off.
    pub fn new(burst: Duration, rate: f64) -> Self {
        Self {
            burst,
            rate,
            tokens: burst.as_secs_f64(),
            updated: None,
            used: Duration::ZERO,
        }
    }

    /// Charges `cpu` at `now`; `Err` with the total used when the bucket runs dry.
    pub fn charge(&mut self, cpu: Duration, now: Instant) -> Result<(), Duration> {
        self.used = self.used.saturating_add(cpu);
        if self.burst.is_zero() {
            return Ok(());
        }
        if let Some(last) = self.updated {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst.as_secs_f64());
        }
        self.updated = Some(now);
        self.tokens -= cpu.as_secs_f64();
        if self.tokens < 0.0 {
            Err(self.used)
        } else {
            Ok(())
        }
    }

    /// CPU time charged so far.
    pub fn used(&self) -> Duration {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn the_source_that_used_least_goes_first() {
        let t0 = Instant::now();
        let mut q = FairQueue::default();
        q.push(ip(1), "hog-1", t0);
        q.push(ip(1), "hog-2", t0);
        let (s, j, _) = q.pop(t0).unwrap();
        assert_eq!((s, j), (ip(1), "hog-1"));
        q.charge(ip(1), Duration::from_millis(200), t0);
        // A newcomer queued later still goes before the hog's second job.
        q.push(ip(2), "fresh", t0 + Duration::from_millis(1));
        assert_eq!(q.pop(t0).unwrap().1, "fresh");
        q.charge(ip(2), Duration::from_millis(1), t0);
        assert_eq!(q.pop(t0).unwrap().1, "hog-2");
        assert!(q.pop(t0).is_none());
        assert_eq!(q.queued, 0);
    }

    #[test]
    fn usage_decays_so_a_reformed_source_is_served_again() {
        let t0 = Instant::now();
        let mut q = FairQueue::default();
        q.push(ip(1), 1, t0);
        q.pop(t0);
        q.charge(ip(1), Duration::from_secs(1), t0);
        q.push(ip(2), 2, t0);
        q.pop(t0);
        q.charge(ip(2), Duration::from_millis(100), t0);
        let later = t0 + USAGE_HALF_LIFE * 4; // 1 s → 62.5 ms; 100 ms → 6.25 ms
        q.push(ip(1), 1, later);
        q.push(ip(2), 2, later);
        assert_eq!(q.pop(later).unwrap().1, 2);
        assert_eq!(q.pop(later).unwrap().1, 1);
    }

    #[test]
    fn the_cpu_budget_refills_at_its_rate_and_runs_dry() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(Duration::from_millis(500), 0.1);
        assert!(b.charge(Duration::from_millis(400), t0).is_ok());
        // 100 ms left, +100 ms after one second.
        assert!(b
            .charge(Duration::from_millis(150), t0 + Duration::from_secs(1))
            .is_ok());
        let err = b.charge(Duration::from_millis(100), t0 + Duration::from_secs(1));
        assert_eq!(err, Err(Duration::from_millis(650)));
        let mut off = CpuBudget::new(Duration::ZERO, 0.0);
        assert!(off.charge(Duration::from_secs(100), t0).is_ok());
    }

    #[tokio::test]
    async fn jobs_run_off_the_calling_thread_and_report_cpu() {
        let pool = CommandPool::start(1).unwrap();
        let caller = std::thread::current().id();
        let (same, cpu) = pool
            .run(ip(1), move || {
                let mut x = 0u64;
                for i in 0..2_000_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                std::thread::current().id() == caller && x != 1
            })
            .await
            .unwrap();
        assert!(!same, "the job ran on the caller's thread");
        assert!(cpu > Duration::ZERO);
        // The thread counts the job after it handed the result back.
        for _ in 0..100 {
            if pool.stats().jobs.load(Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.stats().jobs.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_closed_pool_refuses_and_drops_queued_jobs() {
        let pool = CommandPool::start(1).unwrap();
        pool.inner.lock().closed = true;
        assert_eq!(pool.run(ip(1), || 1).await.err(), Some(PoolClosed));
    }
}
