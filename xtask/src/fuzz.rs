//! `cargo xtask fuzz`: runs every cargo-fuzz target in `tests/fuzz` for a time budget (test-plan T11).
//!
//! Targets are discovered automatically: every `[[bin]]` of `tests/fuzz/Cargo.toml` (what `cargo
//! fuzz add` writes) and every `tests/fuzz/fuzz_targets/*.rs`; a file without a `[[bin]]` entry
//! is reported as a failure rather than silently skipped. libFuzzer writes new inputs to a scratch
//! corpus under `tests/fuzz/target/xtask/corpus/<target>` and only reads the committed seeds in
//! `tests/fuzz/corpus/<target>`, so a run never dirties the tree; crashes land in
//! `tests/fuzz/artifacts/<target>/`.
//!
//! Time: `STTP_FUZZ_BUDGET_SECONDS` (if set) caps the wall-clock fuzzing time of the whole run:
//! each target then gets `min(seconds, budget × jobs / targets)`, so adding targets shortens
//! each one's run instead of lengthening CI (test-plan T11: 60 s per target, two at a time).

use crate::util::{display, output, run, secs};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// libFuzzer flags every run uses: no input may take > 1 s, no run may exceed 2 GiB (T11).
const LIBFUZZER_FLAGS: &[&str] = &["-timeout=1", "-rss_limit_mb=2048", "-print_final_stats=1"];
/// The cargo-fuzz crate, relative to the repository root (commands run from the root).
const FUZZ_DIR: &str = "tests/fuzz";
/// Extra time allowed beyond `-max_total_time` before a run counts as hung and is killed.
const HANG_MARGIN: Duration = Duration::from_secs(180);

pub struct FuzzOpts {
    pub seconds: u64,
    pub targets: Vec<String>,
    pub jobs: usize,
    pub toolchain: String,
    /// Wall-clock fuzzing time for all targets together (`STTP_FUZZ_BUDGET_SECONDS`).
    pub budget: Option<u64>,
}

impl FuzzOpts {
    pub fn new(seconds: u64) -> Self {
        let jobs = thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            seconds,
            targets: Vec::new(),
            jobs,
            toolchain: "nightly".to_string(),
            budget: std::env::var("STTP_FUZZ_BUDGET_SECONDS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|b| *b > 0),
        }
    }

    /// Seconds each of `targets` runs: `seconds`, shortened to fit the budget (at least 10).
    fn per_target(&self, targets: usize, jobs: usize) -> u64 {
        match self.budget {
            Some(budget) if targets > 0 => {
                let rounds = targets.div_ceil(jobs.max(1)) as u64;
                self.seconds.min((budget / rounds).max(10))
            }
            _ => self.seconds,
        }
    }
}

#[derive(Default)]
struct FuzzResult {
    target: String,
    ok: bool,
    status: String,
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    corpus: Option<String>,
    new_units: Option<u64>,
    took: Duration,
    detail: Vec<String>,
    artifact: Option<String>,
}

pub fn fuzz(root: &Path, opts: &FuzzOpts) -> Result<()> {
    let fuzz_dir = root.join(FUZZ_DIR);
    let available = discover(&fuzz_dir)?;
    let selected: Vec<String> = if opts.targets.is_empty() {
        available.clone()
    } else {
        for t in &opts.targets {
            if !available.contains(t) {
                bail!(
                    "unknown fuzz target '{t}' (available: {})",
                    available.join(", ")
                );
            }
        }
        opts.targets.clone()
    };
    if selected.is_empty() {
        bail!(
            "no fuzz targets found in {}",
            fuzz_dir.join("fuzz_targets").display()
        );
    }

    let registered = registered_bins(&fuzz_dir)?;
    let (runnable, unregistered): (Vec<String>, Vec<String>) =
        selected.into_iter().partition(|t| registered.contains(t));

    ensure_tools(&opts.toolchain)?;
    eprintln!(
        "    building {} fuzz target(s) (sanitizer: address)",
        registered.len()
    );
    let t = Instant::now();
    let mut build = cargo_fuzz(&opts.toolchain);
    build
        .args(["build", "--fuzz-dir", FUZZ_DIR])
        .current_dir(root);
    run(&mut build).context("building the fuzz targets failed")?;
    eprintln!("    built in {}", secs(t.elapsed()));

    let jobs = opts.jobs.clamp(1, runnable.len().max(1));
    let seconds = opts.per_target(runnable.len(), jobs);
    eprintln!(
        "    fuzzing {} target(s) for {seconds} s each, {jobs} at a time{}",
        runnable.len(),
        opts.budget
            .map_or(String::new(), |b| format!(" (budget {b} s in all)"))
    );
    let opts = &FuzzOpts {
        seconds,
        targets: Vec::new(),
        jobs,
        toolchain: opts.toolchain.clone(),
        budget: opts.budget,
    };
    let queue = Mutex::new(runnable.into_iter().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some(target) = next else { break };
                let r = fuzz_one(root, &fuzz_dir, &target, opts);
                report_one(&r);
                if let Ok(mut all) = results.lock() {
                    all.push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    for t in unregistered {
        let r = FuzzResult {
            target: t.clone(),
            status: "not registered".into(),
            detail: vec![format!(
                "fuzz_targets/{t}.rs has no [[bin]] entry in tests/fuzz/Cargo.toml (use `cargo fuzz add {t}` or add one)"
            )],
            ..FuzzResult::default()
        };
        report_one(&r);
        results.push(r);
    }
    results.sort_by(|a, b| a.target.cmp(&b.target));
    table(&results);

    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.target.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("fuzz target(s) failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Target names: the `[[bin]]` entries of the manifest and the `*.rs` files in `fuzz_targets/`,
/// sorted, each once.
fn discover(fuzz_dir: &Path) -> Result<Vec<String>> {
    let mut names = registered_bins(fuzz_dir)?;
    for file in target_files(fuzz_dir)? {
        if !names.contains(&file) {
            names.push(file);
        }
    }
    names.sort();
    Ok(names)
}

/// The `*.rs` files in `fuzz_targets/`, by stem.
fn target_files(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let entries = fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Names of the `[[bin]]` sections of the fuzz crate's manifest.
fn registered_bins(fuzz_dir: &Path) -> Result<Vec<String>> {
    let manifest = fuzz_dir.join("Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let mut in_bin = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
                if let Some(value) = value.strip_prefix('=') {
                    names.push(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    Ok(names)
}

fn cargo_fuzz(toolchain: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{toolchain}")).arg("fuzz");
    // `cargo xtask` runs under the stable toolchain's environment; don't leak it into nightly.
    cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO");
    // Keep panic backtraces of the target, drop cargo-fuzz's own anyhow backtrace from the log.
    cmd.env("RUST_LIB_BACKTRACE", "0");
    cmd
}

fn ensure_tools(toolchain: &str) -> Result<()> {
    let rustc = output(
        Command::new("rustc")
            .arg(format!("+{toolchain}"))
            .arg("--version"),
    )
    .with_context(|| {
        format!("the {toolchain} toolchain is missing (rustup toolchain install {toolchain})")
    })?;
    eprintln!("    toolchain: {rustc}");
    let mut probe = cargo_fuzz(toolchain);
    probe.arg("--version");
    if let Some(v) = output(&mut probe) {
        eprintln!("    {v}");
        return Ok(());
    }
    eprintln!("    cargo-fuzz not found, installing it");
    let t = Instant::now();
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    eprintln!("    cargo-fuzz installed in {}", secs(t.elapsed()));
    Ok(())
}

fn fuzz_one(root: &Path, fuzz_dir: &Path, target: &str, opts: &FuzzOpts) -> FuzzResult {
    let started = Instant::now();
    let mut r = match fuzz_one_inner(root, fuzz_dir, target, opts) {
        Ok(r) => r,
        Err(e) => FuzzResult {
            status: "error".into(),
            detail: vec![format!("{e:#}")],
            ..FuzzResult::default()
        },
    };
    r.target = target.to_string();
    r.took = started.elapsed();
    r
}

fn fuzz_one_inner(
    root: &Path,
    fuzz_dir: &Path,
    target: &str,
    opts: &FuzzOpts,
) -> Result<FuzzResult> {
    let work = fuzz_dir.join("target").join("xtask");
    let corpus = work.join("corpus").join(target);
    let seeds = fuzz_dir.join("corpus").join(target);
    let logs = work.join("logs");
    fs::create_dir_all(&corpus)?;
    fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let log = fs::File::create(&log_path)?;

    let mut cmd = cargo_fuzz(&opts.toolchain);
    cmd.args(["run", "--fuzz-dir", FUZZ_DIR, target]);
    cmd.arg(rel(root, &corpus));
    if seeds.is_dir() {
        cmd.arg(rel(root, &seeds));
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", opts.seconds))
        .args(LIBFUZZER_FLAGS);
    cmd.current_dir(root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let shown = display(&cmd);
    eprintln!("    {target}: started (log: {})", rel(root, &log_path));

    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let deadline = Instant::now() + Duration::from_secs(opts.seconds) + HANG_MARGIN;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };

    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let mut r = parse_log(&text);
    match status {
        Some(status) if status.success() => {
            r.ok = true;
            r.status = "ok".into();
        }
        Some(status) if text.contains("failed to build fuzz script") => {
            // The crate changed since the up-front build (or this target alone fails to build).
            r.status = "BUILD FAILED".into();
            r.detail = text
                .lines()
                .filter(|l| l.starts_with("error"))
                .take(5)
                .map(str::to_string)
                .collect();
            r.detail.push(format!(
                "`{shown}` exited with {status}; log: {}",
                rel(root, &log_path)
            ));
        }
        Some(status) => {
            r.status = "CRASHED".into();
            let mut detail = vec![format!("`{shown}` exited with {status}")];
            detail.append(&mut r.detail);
            if let Some(artifact) = &r.artifact {
                let artifact = rel(root, Path::new(artifact));
                detail.push(format!(
                    "reproduce: cargo +{} fuzz run --fuzz-dir {FUZZ_DIR} {target} {artifact}",
                    opts.toolchain
                ));
            }
            detail.push(format!("log: {}", rel(root, &log_path)));
            r.detail = detail;
        }
        None => {
            r.status = "HUNG".into();
            r.detail.push(format!(
                "killed after {} (max_total_time {} s); log: {}",
                secs(Duration::from_secs(opts.seconds) + HANG_MARGIN),
                opts.seconds,
                rel(root, &log_path)
            ));
        }
    }
    if !r.ok {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        r.detail.push("last lines of the log:".into());
        r.detail
            .extend(tail.into_iter().rev().map(|l| format!("  | {l}")));
    }
    Ok(r)
}

/// Pulls libFuzzer's final statistics and any crash description out of a run's log.
fn parse_log(text: &str) -> FuzzResult {
    let mut r = FuzzResult::default();
    let stat = |name: &str| -> Option<u64> {
        let key = format!("stat::{name}:");
        text.lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(&key)?.trim().parse().ok())
    };
    r.runs = stat("number_of_executed_units");
    r.execs_per_sec = stat("average_exec_per_sec");
    r.new_units = stat("new_units_added");
    r.corpus = text.lines().rev().find_map(|l| {
        let rest = &l[l.find(" corp: ")? + 7..];
        Some(rest.split_whitespace().next()?.to_string())
    });
    let reason = text
        .lines()
        .find(|l| l.contains("panicked at"))
        .or_else(|| text.lines().find(|l| l.starts_with("SUMMARY:")))
        .or_else(|| text.lines().find(|l| l.contains("ERROR:")));
    if let Some(reason) = reason {
        r.detail.push(reason.trim().to_string());
    }
    if let Some(artifact) = text
        .lines()
        .find_map(|l| l.split("Test unit written to ").nth(1))
    {
        r.detail.push(format!("artifact: {}", artifact.trim()));
    }
    r
}

fn report_one(r: &FuzzResult) {
    let rate = r.execs_per_sec.map_or("?".into(), |e| e.to_string());
    let corpus = r.corpus.clone().unwrap_or_else(|| "?".into());
    eprintln!(
        "    {}: {} in {} ({rate} exec/s, corpus {corpus})",
        r.target,
        r.status,
        secs(r.took)
    );
    for line in &r.detail {
        eprintln!("      {line}");
    }
}

fn table(results: &[FuzzResult]) {
    let num = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    eprintln!(
        "\n    {:<24} {:<14} {:>12} {:>9} {:>12} {:>6} {:>8}",
        "target", "result", "runs", "exec/s", "corpus", "new", "time"
    );
    for r in results {
        eprintln!(
            "    {:<24} {:<14} {:>12} {:>9} {:>12} {:>6} {:>8}",
            r.target,
            r.status,
            num(r.runs),
            num(r.execs_per_sec),
            r.corpus.as_deref().unwrap_or("-"),
            num(r.new_units),
            secs(r.took)
        );
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_shortens_each_target_as_targets_are_added() {
        let mut o = FuzzOpts::new(60);
        o.budget = None;
        assert_eq!(o.per_target(30, 2), 60);
        o.budget = Some(420);
        assert_eq!(o.per_target(14, 2), 60, "7 rounds of 60 s fit 420 s");
        assert_eq!(o.per_target(20, 2), 42, "10 rounds share 420 s");
        assert_eq!(o.per_target(15, 2), 52, "an odd count needs one more round");
        assert_eq!(o.per_target(1000, 2), 10, "never below 10 s");
    }

    #[test]
    fn targets_come_from_the_manifest_and_the_target_files() {
        let root = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
        let targets = root.join("fuzz_targets");
        fs::create_dir_all(&targets).unwrap();
        fs::write(
            root.join("Cargo.toml"),
            "[package]\nname = \"x\"\n\n[[bin]]\nname = \"beta\"\npath = \"fuzz_targets/beta.rs\"\n\n[[bin]]\nname = \"alpha\"\n",
        )
        .unwrap();
        fs::write(targets.join("beta.rs"), "").unwrap();
        fs::write(targets.join("gamma.rs"), "").unwrap();
        let found = discover(&root).unwrap();
        let registered = registered_bins(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, ["alpha", "beta", "gamma"]);
        assert_eq!(registered, ["beta", "alpha"]);
    }
}
