//! `sttp cert`: make the certificates TLS on the command channel needs (wire.md §8; README
//! "TLS"). Self-signed certificates for the pinned model, or a private CA and certificates it
//! signs. Every certificate made here names `NAME`, `localhost`, `127.0.0.1` and `::1`, and is
//! valid for both TLS client and server authentication, so one file serves either role.
//!
//! Output: `DIR/NAME.key.pem` (mode 0600 on Unix) and `DIR/NAME.cert.pem`; stdout gets exactly
//! one line, the certificate's SHA-256 fingerprint (64 lowercase hex digits, no separators — the
//! form the publisher logs and `allow_fingerprints` accepts).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use sttp_control::tls::{fingerprint, pem};

#[derive(Parser, Debug)]
pub(crate) struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Make a private key and a certificate (self-signed, or signed by --ca-cert/--ca-key).
    New(NewArgs),
    /// Make a private CA (key and self-signed CA certificate) to sign certificates with.
    NewCa(NewCaArgs),
    /// Print the SHA-256 fingerprint of a PEM certificate.
    Fingerprint {
        /// Certificate file (PEM); the first certificate is used.
        file: PathBuf,
    },
}

#[derive(Parser, Debug)]
struct NewArgs {
    /// Subject common name; also a subject alternative name.
    name: String,
    /// Directory to write NAME.key.pem and NAME.cert.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Validity in days, from now.
    #[arg(long, default_value_t = 825)]
    days: u32,
    /// Sign with this CA certificate (PEM) instead of self-signing.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Parser, Debug)]
struct NewCaArgs {
    /// CA common name (files are named after it).
    name: String,
    /// Directory to write NAME.key.pem and NAME.cert.pem into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Validity in days, from now.
    #[arg(long, default_value_t = 3650)]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub(crate) fn cert(args: CertArgs) -> anyhow::Result<()> {
    match args.command {
        CertCommand::New(a) => {
            let params = leaf_params(&a.name, a.days)?;
            let key = KeyPair::generate().context("cannot generate a key pair")?;
            let cert = match (&a.ca_cert, &a.ca_key) {
                (Some(ca_cert), Some(ca_key)) => {
                    let (issuer, issuer_key) = load_ca(ca_cert, ca_key)?;
                    params.signed_by(&key, &issuer, &issuer_key)
                }
                _ => params.self_signed(&key),
            }
            .context("cannot sign the certificate")?;
            write_pair(&a.out, &a.name, &key, &cert, a.force)
        }
        CertCommand::NewCa(a) => {
            let mut params = base_params(&a.name, a.days)?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().context("cannot generate a key pair")?;
            let cert = params
                .self_signed(&key)
                .context("cannot sign the CA certificate")?;
            write_pair(&a.out, &a.name, &key, &cert, a.force)
        }
        CertCommand::Fingerprint { file } => {
            let der = pem::load_cert(&file)?;
            println!("{}", fingerprint::sha256_hex(&der));
            Ok(())
        }
    }
}

fn base_params(name: &str, days: u32) -> anyhow::Result<CertificateParams> {
    anyhow::ensure!(
        !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
        "NAME {name:?} cannot name files: use letters, digits, '-', '_' or '.'"
    );
    anyhow::ensure!(days >= 1, "--days must be at least 1");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    let now = time::OffsetDateTime::now_utc();
    // A minute of slack for peers whose clocks run a little behind.
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7F; // a positive INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

fn leaf_params(name: &str, days: u32) -> anyhow::Result<CertificateParams> {
    let mut params = base_params(name, days)?;
    let mut names = vec![name.to_owned()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    params.subject_alt_names = CertificateParams::new(names)
        .with_context(|| format!("{name:?} cannot be a subject alternative name"))?
        .subject_alt_names;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    Ok(params)
}

fn load_ca(cert: &Path, key: &Path) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let cert_pem = std::fs::read_to_string(cert)
        .with_context(|| format!("cannot read CA certificate {}", cert.display()))?;
    let key_pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read CA key {}", key.display()))?;
    let key = KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a usable private key", key.display()))?;
    let params = CertificateParams::from_ca_cert_pem(&cert_pem)
        .with_context(|| format!("{} is not a CA certificate", cert.display()))?;
    // rcgen signs with an issuer `Certificate`; only its name and key identifier are used.
    let issuer = params
        .self_signed(&key)
        .context("the CA key does not fit the CA certificate")?;
    Ok((issuer, key))
}

fn write_pair(
    dir: &Path,
    name: &str,
    key: &KeyPair,
    cert: &rcgen::Certificate,
    force: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let key_path = dir.join(format!("{name}.key.pem"));
    let cert_path = dir.join(format!("{name}.cert.pem"));
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600, force)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644, force)?;
    let fp = fingerprint::sha256_hex(cert.der());
    eprintln!(
        "wrote {} (private key, mode 0600) and {}\nSHA-256 fingerprint: {}",
        key_path.display(),
        cert_path.display(),
        fingerprint::colon_form(&fp)
    );
    println!("{fp}");
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists (use --force to replace it)", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    #[cfg(unix)]
    {
        // `mode` applies only to new files; --force over an old, looser file must tighten it.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
