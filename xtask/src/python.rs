//! The project-local Python venv with the reference peer (`sttpapi`, peers.md).

use crate::util::{display, output, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

pub const STTPAPI_VERSION: &str = "0.7.6";
const PIP_ATTEMPTS: u32 = 3;

/// Makes sure `<root>/.venv` exists with `sttpapi==0.7.6`; returns the venv's python (absolute).
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    if python.exists() {
        match installed_version(&python) {
            Some(v) if v == STTPAPI_VERSION => {
                eprintln!("    sttpapi {v} already installed in {}", venv.display());
                return Ok(python);
            }
            Some(v) => eprintln!("    sttpapi {v} found, want {STTPAPI_VERSION}"),
            None if output(Command::new(&python).arg("--version")).is_none() => {
                eprintln!("    {} is broken, recreating the venv", python.display());
                run(Command::new("python3")
                    .args(["-m", "venv", "--clear"])
                    .arg(&venv))?;
            }
            None => eprintln!("    sttpapi not installed in {}", venv.display()),
        }
    } else {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
            "creating the venv failed (on Debian `apt-get install -y python3-venv` provides ensurepip)",
        )?;
    }
    pip_install(&python)?;
    match installed_version(&python) {
        Some(v) if v == STTPAPI_VERSION => {}
        other => bail!("after pip install, sttpapi version is {other:?}, want {STTPAPI_VERSION}"),
    }
    run(Command::new(&python).args(["-c", "import sttp.publisher, sttp.subscriber"]))
        .context("sttpapi installed but does not import")?;
    Ok(python)
}

fn installed_version(python: &Path) -> Option<String> {
    let code = "import importlib.metadata as m; print(m.version('sttpapi'))";
    output(Command::new(python).args(["-c", code]))
}

fn pip_install(python: &Path) -> Result<()> {
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ])
    .arg(format!("sttpapi=={STTPAPI_VERSION}"));
    let shown = display(&cmd);
    for attempt in 1..=PIP_ATTEMPTS {
        eprintln!("    $ {shown}   (attempt {attempt}/{PIP_ATTEMPTS})");
        let out = cmd
            .output()
            .with_context(|| format!("cannot start `{shown}`"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        for line in tail.iter().rev() {
            eprintln!("    | {line}");
        }
        if attempt < PIP_ATTEMPTS {
            let wait = Duration::from_secs(5 * u64::from(attempt));
            eprintln!(
                "    pip failed ({}), retrying in {} s",
                out.status,
                wait.as_secs()
            );
            sleep(wait);
        }
    }
    bail!("`{shown}` failed {PIP_ATTEMPTS} times")
}
