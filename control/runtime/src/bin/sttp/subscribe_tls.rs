//! `sttp subscribe` TLS flags (README "TLS").

use anyhow::Context as _;
use clap::Args;
use std::collections::HashSet;
use std::path::PathBuf;
use sttp_control::tls::{fingerprint, pem, ClientIdentity, ServerTrust, TlsClientSettings};

#[derive(Args, Debug)]
pub(crate) struct SubscribeTlsArgs {
    /// Connect with mutual TLS.
    #[arg(long)]
    tls: bool,
    /// Our certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "tls")]
    cert: Option<PathBuf>,
    /// Our private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls")]
    key: Option<PathBuf>,
    /// Pin the publisher's certificate (PEM); repeatable. No server-name check.
    #[arg(long = "pin-cert", value_name = "FILE", requires = "tls")]
    pin_certs: Vec<PathBuf>,
    /// Pin the publisher's certificate by SHA-256 fingerprint (hex); repeatable.
    #[arg(long = "pin-fingerprint", value_name = "HEX", requires = "tls")]
    pin_fingerprints: Vec<String>,
    /// Trust a publisher certificate signed by this CA (PEM) and naming the host.
    #[arg(long, value_name = "FILE", requires = "tls", conflicts_with_all = ["pin_certs", "pin_fingerprints"])]
    ca: Option<PathBuf>,
    /// With --ca: the name the publisher's certificate must carry (default: the host).
    #[arg(long, value_name = "NAME", requires = "ca")]
    server_name: Option<String>,
}

impl SubscribeTlsArgs {
    /// The client TLS settings, or None without --tls.
    pub(crate) fn settings(&self) -> anyhow::Result<Option<TlsClientSettings>> {
        if !self.tls {
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            anyhow::bail!("--tls needs our certificate and key (--cert FILE --key FILE)");
        };
        let identity = ClientIdentity {
            cert_chain: pem::load_certs(cert)?,
            key: pem::load_key(key)?,
        };
        let trust = match &self.ca {
            Some(ca) => ServerTrust::Ca {
                roots: pem::load_certs(ca)?,
            },
            None => {
                let mut fingerprints = HashSet::new();
                for path in &self.pin_certs {
                    fingerprints.insert(fingerprint::sha256_hex(&pem::load_cert(path)?));
                }
                for f in &self.pin_fingerprints {
                    fingerprints.insert(fingerprint::parse(f).map_err(anyhow::Error::msg)?);
                }
                anyhow::ensure!(
                    !fingerprints.is_empty(),
                    "--tls needs a way to trust the publisher: --pin-cert FILE, --pin-fingerprint HEX or --ca FILE"
                );
                ServerTrust::Pinned { fingerprints }
            }
        };
        let settings =
            TlsClientSettings::new(Some(identity), trust).context("cannot set up TLS")?;
        Ok(Some(match &self.server_name {
            Some(name) => settings.with_server_name(name),
            None => settings,
        }))
    }
}
