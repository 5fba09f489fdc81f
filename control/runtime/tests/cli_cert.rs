//! `sttp cert`: the files it writes, their modes, and the fingerprint it prints (README "TLS").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sttp");

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sttp-cli-cert-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sttp(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// SHA-256 of the DER, computed here independently of the binary.
fn sha256_of_pem_cert(path: &Path) -> String {
    let der = CertificateDer::from_pem_file(path).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn cert_new_writes_a_key_and_a_certificate_and_prints_its_fingerprint() {
    let dir = TempDir::new("new");
    let out = dir.0.join("certs");
    let result = sttp(&[
        "cert",
        "new",
        "sub1",
        "--out",
        out.to_str().unwrap(),
        "--days",
        "30",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let key = out.join("sub1.key.pem");
    let cert = out.join("sub1.cert.pem");
    assert!(
        PrivateKeyDer::from_pem_file(&key).is_ok(),
        "the key file holds a private key"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let stdout = String::from_utf8(result.stdout).unwrap();
    let printed = stdout.trim();
    assert_eq!(printed.len(), 64, "one fingerprint line: {stdout:?}");
    assert_eq!(
        printed,
        sha256_of_pem_cert(&cert),
        "printed fingerprint is the file's"
    );

    // CN and the names that make it usable as a server certificate too.
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = parsed.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "sub1");
    let san = format!(
        "{:?}",
        parsed.subject_alternative_name().unwrap().unwrap().value
    );
    for name in [
        "DNSName(\"sub1\")",
        "DNSName(\"localhost\")",
        "IPAddress([127, 0, 0, 1])",
    ] {
        assert!(san.contains(name), "SAN {name}: {san}");
    }
    let days = (parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp())
        / 86_400;
    assert_eq!(days, 30, "--days sets the validity");

    // `sttp cert fingerprint` agrees; a second `new` refuses to overwrite.
    let fp = sttp(&["cert", "fingerprint", cert.to_str().unwrap()]);
    assert_eq!(String::from_utf8(fp.stdout).unwrap().trim(), printed);
    let again = sttp(&["cert", "new", "sub1", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn cert_new_ca_signs_certificates() {
    let dir = TempDir::new("ca");
    let out = dir.0.to_str().unwrap();
    let ca = sttp(&["cert", "new-ca", "testca", "--out", out]);
    assert!(
        ca.status.success(),
        "{}",
        String::from_utf8_lossy(&ca.stderr)
    );
    let ca_cert = dir.0.join("testca.cert.pem");
    let ca_key = dir.0.join("testca.key.pem");
    let leaf = sttp(&[
        "cert",
        "new",
        "pub1",
        "--out",
        out,
        "--ca-cert",
        ca_cert.to_str().unwrap(),
        "--ca-key",
        ca_key.to_str().unwrap(),
    ]);
    assert!(
        leaf.status.success(),
        "{}",
        String::from_utf8_lossy(&leaf.stderr)
    );
    let ca_der = CertificateDer::from_pem_file(&ca_cert).unwrap();
    let leaf_der = CertificateDer::from_pem_file(dir.0.join("pub1.cert.pem")).unwrap();
    let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let (_, leaf_parsed) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    assert!(ca_parsed.is_ca());
    assert_eq!(leaf_parsed.issuer(), ca_parsed.subject());
    leaf_parsed
        .verify_signature(Some(ca_parsed.public_key()))
        .expect("the leaf is signed by the CA's key");
}

/// A running `sttp serve` (its announced address), killed on drop.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        use std::io::BufRead as _;
        let child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            addr: String::new(),
        };
        let stderr = server.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while server.addr.is_empty() {
            let line = rx
                .recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
                .expect("serve announces its address");
            if let Some(rest) = line.strip_prefix("sttp publisher on ") {
                server.addr = rest.split_whitespace().next().unwrap().to_string();
            }
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn certificates_from_cert_new_work_with_serve_and_subscribe_tls() {
    let dir = TempDir::new("e2e");
    let out = dir.0.to_str().unwrap();
    for name in ["publisher", "sub1", "stranger"] {
        assert!(sttp(&["cert", "new", name, "--out", out]).status.success());
    }
    let path = |f: &str| dir.0.join(f).to_str().unwrap().to_owned();
    let server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--cert",
        &path("publisher.cert.pem"),
        "--key",
        &path("publisher.key.pem"),
        "--allow-cert",
        &path("sub1.cert.pem"),
        "--demo-signals",
        "15",
    ]);
    let subscribe = |who: &str| {
        Command::new(BIN)
            .args([
                "subscribe",
                &server.addr,
                "--format",
                "csv",
                "--count",
                "15",
            ])
            .args(["--no-reconnect", "--duration", "10", "--tls"])
            .args(["--cert", &path(&format!("{who}.cert.pem"))])
            .args(["--key", &path(&format!("{who}.key.pem"))])
            .args(["--pin-cert", &path("publisher.cert.pem")])
            .output()
            .unwrap()
    };
    let good = subscribe("sub1");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let rows = String::from_utf8(good.stdout).unwrap();
    assert_eq!(rows.lines().count(), 1 + 15, "header and 15 points: {rows}");
    let refused = subscribe("stranger");
    assert!(
        !refused.status.success(),
        "an unpinned subscriber is refused"
    );
    assert!(refused.stdout.len() <= "signal_id,point_tag,time,ticks,value,flags\n".len());
}
