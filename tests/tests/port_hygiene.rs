//! No pick-then-release ports anywhere in the repository (issue 16: the test command failed on a
//! fresh clone because a test bound port 0, closed the socket and handed the number to a Python
//! peer, and something else took the port in between).
//!
//! A process that serves binds port 0 itself and reports the port it got (our publisher's
//! `local_addr()`, `sttp serve`'s stderr line and `--address-file`, the Python peers' stdout, the
//! perf receivers' `ready` line, `UdpChannel { port: 0 }` with `ClientStats::udp_port`); a port
//! that must look closed is held by a socket that never listens. This test scans every Rust and
//! Python source file for the shapes that release a port after learning its number, and proves
//! with the code that was removed (negative controls) that the scan catches them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// One finding: file, line, what.
#[derive(Debug)]
struct Finding {
    file: PathBuf,
    line: usize,
    rule: &'static str,
}

/// Text with comments removed (Rust `//` line comments and Python `#` comments), so that prose
/// describing the old pattern is not a finding. String contents are kept.
fn strip_comments(text: &str, python: bool) -> String {
    text.lines()
        .map(|l| {
            let marker = if python { "#" } else { "//" };
            match l.trim_start().starts_with(marker) {
                true => "",
                false => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statement (up to `;`, or the end of the text) that starts at `from`.
fn statement_at(text: &str, from: usize) -> &str {
    let rest = &text[from..];
    &rest[..rest.find(';').map_or(rest.len(), |i| i + 1)]
}

/// Finds the pick-then-release shapes in one Rust source text.
fn scan_rust(text: &str) -> Vec<(usize, &'static str)> {
    let text = strip_comments(text, false);
    let mut out = Vec::new();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    // Offsets in `compact` map back to lines through this table.
    let mut lines = Vec::with_capacity(compact.len());
    let mut line = 1;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if !c.is_whitespace() {
            lines.push(line);
        }
    }
    let at = |i: usize| lines.get(i).copied().unwrap_or(line);
    // 1. `X::bind(..)` whose address is read in the same expression: the socket is a
    //    temporary, dropped at the end of the statement, and only its number survives.
    let mut i = 0;
    while let Some(k) = compact[i..].find("::bind(") {
        let start = i + k;
        let stmt = statement_at(&compact, start);
        let mut rest = stmt;
        // Skip the argument list, then unwraps, `?` and expects.
        if let Some(close) = matching_paren(rest, rest.find('(').unwrap()) {
            rest = &rest[close + 1..];
            loop {
                if let Some(r) = rest.strip_prefix('?') {
                    rest = r;
                } else if let Some(r) = rest.strip_prefix(".unwrap()") {
                    rest = r;
                } else if rest.starts_with(".expect(") {
                    match matching_paren(rest, ".expect".len()) {
                        Some(c) => rest = &rest[c + 1..],
                        None => break,
                    }
                } else {
                    break;
                }
            }
            if rest.starts_with(".local_addr()") {
                out.push((
                    at(start),
                    "a temporary socket's port is taken and the socket dropped",
                ));
            }
        }
        i = start + 1;
    }
    // 2. A block that binds a socket and yields only its address: `{ let s = X::bind(..)..;
    //    s.local_addr()..}` — the socket dies with the block.
    // 3. `let s = X::bind(..)..;` … `s.local_addr()` … `drop(s)`.
    let mut i = 0;
    while let Some(k) = compact[i..].find("let") {
        let start = i + k;
        i = start + 3;
        let after = &compact[start + 3..];
        let word: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if word.is_empty() || !after[word.len()..].starts_with('=') {
            continue;
        }
        // `let mut s =` reads `letmuts=` once the spaces are gone.
        let name = match word.strip_prefix("mut") {
            Some(rest) if !rest.is_empty() && compact[start..].starts_with("letmut") => rest,
            _ => word.as_str(),
        };
        let stmt = statement_at(&compact, start);
        if !stmt.contains("::bind(") && !stmt.contains(".bind(") {
            continue;
        }
        let tail = &compact[start + stmt.len()..];
        let addr = format!("{name}.local_addr()");
        if tail.starts_with(&addr) {
            let expr = &tail[..tail.find([';', '}']).unwrap_or(tail.len())];
            if tail[expr.len()..].starts_with('}') {
                out.push((
                    at(start),
                    "a block binds a socket and returns only its address",
                ));
                continue;
            }
        }
        let window = &tail[..tail.len().min(600)];
        if let (Some(a), Some(d)) = (window.find(&addr), window.find(&format!("drop({name})"))) {
            if a < d {
                out.push((
                    at(start),
                    "a socket's port is read, then the socket is dropped",
                ));
            }
        }
    }
    // 4. Helpers that exist only to hand out a released port.
    for (k, _) in compact.match_indices("fn") {
        let name: String = compact[k + 2..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let n = name.to_ascii_lowercase();
        let picks = ["free", "unused", "pick", "spare", "available"];
        if n.contains("port") && picks.iter().any(|p| n.contains(p)) {
            out.push((at(k), "a helper that picks a port for someone else to bind"));
        }
    }
    out
}

/// Finds the pick-then-release shape in Python: `s.bind((…, 0))` … `s.close()` nearby.
fn scan_python(text: &str) -> Vec<(usize, &'static str)> {
    let text = strip_comments(text, true);
    let compact: String = text.chars().filter(|c| *c != ' ').collect();
    let mut out = Vec::new();
    for (k, _) in compact.match_indices(".bind((") {
        let name: String = compact[..k]
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let args = &compact[k..compact[k..].find("))").map_or(compact.len(), |e| k + e)];
        if name.is_empty() || !args.ends_with(",0") {
            continue;
        }
        let window = &compact[k..compact.len().min(k + 400)];
        if window.contains(&format!("{name}.close()")) {
            let line = compact[..k].matches('\n').count() + 1;
            out.push((
                line,
                "a socket bound to port 0 is closed after its port was read",
            ));
        }
    }
    out
}

fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let skip = [
                "target",
                ".git",
                ".venv",
                "corpus",
                "artifacts",
                "node_modules",
            ];
            if !skip.contains(&name.as_str()) && !name.starts_with('.') {
                walk(&path, out);
            }
        } else if name.ends_with(".rs") || name.ends_with(".py") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_picks_a_port_and_releases_it() {
    let root = sttp_tests::repo_root();
    let me = Path::new(file!()).file_name().unwrap();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let rust = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .count();
    assert!(
        rust > 50,
        "the scan found only {rust} Rust files under {}",
        root.display()
    );
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("tests/python/sub_peer.py")),
        "the Python peers are scanned"
    );
    let mut findings = Vec::new();
    for f in &files {
        if f.file_name() == Some(me) {
            continue; // its negative controls hold the old code as strings
        }
        let text = std::fs::read_to_string(f).unwrap();
        let hits = if f.extension().is_some_and(|e| e == "py") {
            scan_python(&text)
        } else {
            scan_rust(&text)
        };
        findings.extend(hits.into_iter().map(|(line, rule)| Finding {
            file: f.strip_prefix(&root).unwrap_or(f).to_path_buf(),
            line,
            rule,
        }));
    }
    assert!(
        findings.is_empty(),
        "pick-then-release ports (bind port 0 in the process that serves and report the port, \
         or hold the socket):\n{}",
        findings
            .iter()
            .map(|f| format!("  {}:{}: {}", f.file.display(), f.line, f.rule))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Negative controls: the code this issue removed is caught, each shape by its rule, and the
/// forms that replaced it are not.
#[test]
fn the_scan_catches_the_removed_code_and_passes_its_replacements() {
    let removed_rust = [
        // tests/tests/interop_python.rs (TCP) and control/runtime/tests/cli.rs
        "let port = std::net::TcpListener::bind(\"127.0.0.1:0\")\n    .unwrap()\n    .local_addr()\n    .unwrap()\n    .port();",
        // tests/tests/interop_python.rs (UDP), slow_subscriber.rs, udp_data_channel.rs
        "fn f() -> u16 { std::net::UdpSocket::bind(\"127.0.0.1:0\").unwrap().local_addr().unwrap().port() }",
        // perf/tests/harness.rs, with `?`
        "let port = UdpSocket::bind(\"0.0.0.0:0\")?.local_addr()?.port();",
        // tests/tests/udp_tamper.rs
        "fn free_port() -> u16 {\n    loop {\n        let s = UdpSocket::bind(\"127.0.0.1:0\").unwrap();\n        let port = s.local_addr().unwrap().port();\n        if port >= 10_000 {\n            return port;\n        }\n    }\n}",
        // perf/src/raw.rs
        "let probe = TcpListener::bind(\"127.0.0.1:0\").unwrap();\nlet addr = probe.local_addr().unwrap();\ndrop(probe);",
        // dataplane/engine/tests/io_backends.rs
        "let closed = {\n    let s = UdpSocket::bind(\"127.0.0.1:0\").unwrap();\n    s.local_addr().unwrap()\n};",
    ];
    for code in removed_rust {
        assert!(!scan_rust(code).is_empty(), "not caught:\n{code}");
    }
    let python = "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind((\"127.0.0.1\", 0))\nport = s.getsockname()[1]\ns.close()\n";
    assert!(!scan_python(python).is_empty(), "not caught:\n{python}");
    let kept_rust = [
        "let listener = TcpListener::bind(\"127.0.0.1:0\")?;\nlet addr = listener.local_addr()?;\nserve(listener);",
        "let rx = std::net::UdpSocket::bind(\"127.0.0.1:0\").unwrap();\nlet dest = rx.local_addr().unwrap();\nsend(dest);\nrecv(&rx);",
        "c.udp = Some(UdpChannel { port: 0, cipher });",
        "let (closed, addr) = bound_not_listening();\nlet out = subscribe(&addr.to_string());\ndrop(closed);",
        "let socket = UdpSocket::bind(bind).ok()?;",
    ];
    for code in kept_rust {
        assert!(
            scan_rust(code).is_empty(),
            "false alarm:\n{code}\n{:?}",
            scan_rust(code)
        );
    }
    let held = "held = _HeldUdpSocket(socket.AF_INET, socket.SOCK_DGRAM)\nsocket.socket.bind(held, (\"0.0.0.0\", 0))\nport = held.getsockname()[1]\n";
    assert!(scan_python(held).is_empty(), "false alarm:\n{held}");
}
