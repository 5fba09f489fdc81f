//! `cargo xtask <command>`: project orchestration (plain std + anyhow). See `USAGE`.

mod fuzz;
mod perf;
mod python;
mod util;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use util::{repo_root, run, target_dir, Steps};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test      the project's test command (README, CI): python peer venv, rustfmt, clippy,
            release build of `sttp`, `cargo test --workspace --release`, benches in test mode,
            optional fuzz smoke run
              --skip-lint          skip rustfmt and clippy
              --skip-fuzz          skip the fuzz smoke run
              --fuzz-seconds N     fuzz every target N s (default: $STTP_FUZZ_SECONDS or 0 = off)
  fuzz      run the cargo-fuzz targets in tests/fuzz (nightly, installs cargo-fuzz if missing)
              --seconds N          time per target (default 60)
              --target NAME        only this target (repeatable; default: every target)
              --jobs J             targets run in parallel (default: number of CPUs)
              --toolchain T        toolchain for cargo-fuzz (default nightly)
  interop   only the interop tests against the Python peer (tests/tests/interop_python.rs)
  perf      the end-to-end fan-out scenarios (perf/README.md): writes <target>/perf/summary.json
            and summary.svg and prints a table
              --quick              a subset, under 5 minutes
              --duration SECS      measurement window per run (default 10, quick 5)
              --scenario NAME      only this scenario (repeatable)

Tests get STTP_PYTHON (venv python with sttpapi), STTP_BIN (target/release/sttp) and
STTP_REPO (repository root) in their environment.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        bail!("no command given");
    };
    let mut flags = Flags::new(rest);
    match command.as_str() {
        "test" | "ci" => {
            let opts = TestOpts {
                skip_lint: flags.switch("--skip-lint"),
                skip_fuzz: flags.switch("--skip-fuzz"),
                fuzz_seconds: match flags.value("--fuzz-seconds")? {
                    Some(v) => parse_secs("--fuzz-seconds", &v)?,
                    None => match std::env::var("STTP_FUZZ_SECONDS") {
                        Ok(v) if !v.is_empty() => parse_secs("STTP_FUZZ_SECONDS", &v)?,
                        _ => 0,
                    },
                },
            };
            flags.finish()?;
            test(&opts)
        }
        "fuzz" => {
            let mut opts = fuzz::FuzzOpts::new(60);
            if let Some(v) = flags.value("--seconds")? {
                opts.seconds = parse_secs("--seconds", &v)?;
            }
            while let Some(t) = flags.value("--target")? {
                opts.targets.push(t);
            }
            if let Some(v) = flags.value("--jobs")? {
                opts.jobs = v
                    .parse()
                    .with_context(|| format!("--jobs: bad number '{v}'"))?;
            }
            if let Some(v) = flags.value("--toolchain")? {
                opts.toolchain = v;
            }
            flags.finish()?;
            let root = repo_root();
            let mut steps = Steps::new(1);
            let result = steps.run("fuzz", || fuzz::fuzz(&root, &opts));
            steps.summary();
            result
        }
        "interop" => {
            flags.finish()?;
            interop()
        }
        "perf" => {
            let mut opts = perf::PerfOpts {
                quick: flags.switch("--quick"),
                duration: match flags.value("--duration")? {
                    Some(v) => Some(parse_secs("--duration", &v)?),
                    None => None,
                },
                only: Vec::new(),
            };
            while let Some(name) = flags.value("--scenario")? {
                opts.only.push(name);
            }
            flags.finish()?;
            perf::perf(&opts)
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("{USAGE}");
            bail!("unknown command '{other}'")
        }
    }
}

struct TestOpts {
    skip_lint: bool,
    skip_fuzz: bool,
    fuzz_seconds: u64,
}

fn test(opts: &TestOpts) -> Result<()> {
    let root = repo_root();
    let mut steps = Steps::new(7);
    let result = test_steps(&root, opts, &mut steps);
    steps.summary();
    result
}

fn test_steps(root: &Path, opts: &TestOpts, steps: &mut Steps) -> Result<()> {
    let python = steps.run("python peer", || python::ensure_venv(root))?;
    if opts.skip_lint {
        steps.skip("rustfmt", "--skip-lint");
        steps.skip("clippy", "--skip-lint");
    } else {
        steps.run("rustfmt", || {
            run(cargo(root).args(["fmt", "--all", "--", "--check"]))
                .context("formatting differs: run `cargo fmt --all`")
        })?;
        steps.run("clippy", || {
            run(cargo(root).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
    }
    let bin = steps.run("build sttp (release)", || build_sttp(root))?;
    steps.run("tests (release)", || {
        let mut cmd = cargo(root);
        cmd.args(["test", "--workspace", "--release"]);
        test_env(&mut cmd, root, &python, &bin);
        run(&mut cmd)
    })?;
    steps.run("benches (test mode)", || {
        // `--bench '*'`: only the criterion targets; the libs' unit tests already ran above.
        run(cargo(root).args(["bench", "--workspace", "--bench", "*", "--", "--test"]))
    })?;
    if opts.skip_fuzz {
        steps.skip("fuzz smoke", "--skip-fuzz");
    } else if opts.fuzz_seconds == 0 {
        steps.skip("fuzz smoke", "--fuzz-seconds 0");
    } else {
        let fuzz_opts = fuzz::FuzzOpts::new(opts.fuzz_seconds);
        steps.run("fuzz smoke", || fuzz::fuzz(root, &fuzz_opts))?;
    }
    Ok(())
}

fn interop() -> Result<()> {
    let root = repo_root();
    let mut steps = Steps::new(3);
    let result = (|| {
        let python = steps.run("python peer", || python::ensure_venv(&root))?;
        let bin = steps.run("build sttp (release)", || build_sttp(&root))?;
        steps.run("interop tests (release)", || {
            let mut cmd = cargo(&root);
            cmd.args([
                "test",
                "--release",
                "-p",
                "sttp-tests",
                "--test",
                "interop_python",
            ]);
            test_env(&mut cmd, &root, &python, &bin);
            run(&mut cmd)
        })
    })();
    steps.summary();
    result
}

/// `cargo build --release -p sttp-control`; returns the absolute path of the `sttp` binary.
fn build_sttp(root: &Path) -> Result<PathBuf> {
    run(cargo(root).args(["build", "--release", "-p", "sttp-control"]))?;
    let bin = target_dir(root).join("release").join("sttp");
    if !bin.is_file() {
        bail!("the build succeeded but {} does not exist", bin.display());
    }
    eprintln!("    binary: {}", bin.display());
    Ok(bin)
}

fn test_env(cmd: &mut Command, root: &Path, python: &Path, bin: &Path) {
    // The venv python must keep its venv path (no canonicalize: it is a symlink into the system).
    for (key, value) in [
        ("STTP_PYTHON", python),
        ("STTP_BIN", bin),
        ("STTP_REPO", root),
    ] {
        eprintln!("    {key}={}", value.display());
        cmd.env(key, value);
    }
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root);
    cmd
}

fn parse_secs(name: &str, v: &str) -> Result<u64> {
    v.parse()
        .with_context(|| format!("{name}: expected a whole number of seconds, got '{v}'"))
}

/// Minimal flag parser: `--switch`, `--key value` and `--key=value`; leftovers are an error.
struct Flags {
    args: Vec<String>,
}

impl Flags {
    fn new(args: &[String]) -> Self {
        Self {
            args: args.to_vec(),
        }
    }

    fn switch(&mut self, name: &str) -> bool {
        let before = self.args.len();
        self.args.retain(|a| a != name);
        self.args.len() != before
    }

    /// Takes the first occurrence of `name`; call repeatedly for repeatable flags.
    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        for i in 0..self.args.len() {
            if let Some(v) = self.args[i].strip_prefix(&prefix) {
                let v = v.to_string();
                self.args.remove(i);
                return Ok(Some(v));
            }
            if self.args[i] == name {
                if i + 1 >= self.args.len() {
                    bail!("{name} needs a value");
                }
                let v = self.args.remove(i + 1);
                self.args.remove(i);
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn finish(self) -> Result<()> {
        if !self.args.is_empty() {
            bail!(
                "unexpected argument(s): {} (see `cargo xtask help`)",
                self.args.join(" ")
            );
        }
        Ok(())
    }
}
