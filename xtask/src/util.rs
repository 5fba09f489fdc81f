//! Shared helpers: repository paths, running commands, timed steps.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The repository root (the parent of the `xtask` crate), fixed at compile time.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The workspace target directory as cargo sees it (honours `CARGO_TARGET_DIR` and
/// `build.target-dir`), falling back to `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    let out = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        let key = "\"target_directory\":\"";
        if let Some(start) = text.find(key).map(|i| i + key.len()) {
            if let Some(len) = text[start..].find('"') {
                return PathBuf::from(&text[start..start + len]);
            }
        }
    }
    root.join("target")
}

/// Shell-like rendering of a command, for messages.
pub fn display(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.contains(' ') {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// Runs `cmd` with inherited stdio; an error names the command and its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    eprintln!("    $ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    check(status, &shown)
}

pub fn check(status: ExitStatus, shown: &str) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{shown}` failed ({status})")
    }
}

/// Runs `cmd` quietly and returns its trimmed stdout if it succeeded.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

enum Outcome {
    Ok(Duration),
    Skipped(String),
    Failed(Duration),
}

/// A numbered list of timed steps with a summary table at the end.
pub struct Steps {
    total: usize,
    started: Instant,
    done: Vec<(String, Outcome)>,
}

impl Steps {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            started: Instant::now(),
            done: Vec::new(),
        }
    }

    fn heading(&self, name: &str) -> String {
        format!("[{}/{}] {name}", self.done.len() + 1, self.total)
    }

    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("\n==> {}", self.heading(name));
        let t = Instant::now();
        let result = f();
        let took = t.elapsed();
        match result {
            Ok(v) => {
                eprintln!("<== {name}: ok ({})", secs(took));
                self.done.push((name.to_string(), Outcome::Ok(took)));
                Ok(v)
            }
            Err(e) => {
                eprintln!("<== {name}: FAILED after {}", secs(took));
                self.done.push((name.to_string(), Outcome::Failed(took)));
                Err(e.context(format!("step '{name}' failed")))
            }
        }
    }

    pub fn skip(&mut self, name: &str, why: &str) {
        eprintln!("\n==> {}: skipped ({why})", self.heading(name));
        self.done
            .push((name.to_string(), Outcome::Skipped(why.to_string())));
    }

    pub fn summary(&self) {
        eprintln!("\nsummary:");
        for (name, outcome) in &self.done {
            let (status, detail) = match outcome {
                Outcome::Ok(d) => ("ok", secs(*d)),
                Outcome::Skipped(why) => ("skipped", why.clone()),
                Outcome::Failed(d) => ("FAILED", secs(*d)),
            };
            eprintln!("    {name:<24} {status:<8} {detail}");
        }
        let not_run = self.total.saturating_sub(self.done.len());
        if not_run > 0 {
            eprintln!("    ({not_run} later step(s) not run)");
        }
        eprintln!(
            "    {:<24} {:<8} {}",
            "total",
            "",
            secs(self.started.elapsed())
        );
    }
}
