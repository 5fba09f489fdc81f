//! `sttp serve` TLS flags (README "TLS"): they override the config file's `[tls]` table.

use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use sttp_control::config::{ServeConfig, DEFAULT_LISTEN};
use sttp_control::server::Transport;
use sttp_control::tls::{fingerprint, DEFAULT_TLS_LISTEN};

#[derive(Args, Debug)]
pub(crate) struct ServeTlsArgs {
    /// Serve mutual TLS on the command channel (default listen 127.0.0.1:7167).
    #[arg(long)]
    tls: bool,
    /// The publisher's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The publisher's private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Pin a subscriber certificate (PEM); repeatable.
    #[arg(long = "allow-cert", value_name = "FILE")]
    allow_certs: Vec<PathBuf>,
    /// Pin a subscriber certificate by SHA-256 fingerprint (hex, ':' allowed); repeatable.
    #[arg(long = "allow-fingerprint", value_name = "HEX")]
    allow_fingerprints: Vec<String>,
    /// Trust subscriber certificates signed by this CA (PEM) instead of pinning.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// A revocation list (PEM) for --ca; repeatable.
    #[arg(long = "crl", value_name = "FILE")]
    crls: Vec<PathBuf>,
}

impl ServeTlsArgs {
    /// Folds the flags into `config`; with TLS on and no address given anywhere, the listen
    /// address moves to the TLS port.
    pub(crate) fn apply(self, config: &mut ServeConfig, listen_given: bool) -> anyhow::Result<()> {
        let tls = &mut config.tls;
        tls.enabled |= self.tls;
        if self.cert.is_some() {
            tls.cert = self.cert;
        }
        if self.key.is_some() {
            tls.key = self.key;
        }
        tls.allow_certs.extend(self.allow_certs);
        tls.allow_fingerprints.extend(self.allow_fingerprints);
        if self.ca.is_some() {
            tls.ca = self.ca;
        }
        tls.crls.extend(self.crls);
        if tls.enabled && !listen_given && config.listen.to_string() == DEFAULT_LISTEN {
            config.listen = DEFAULT_TLS_LISTEN.parse()?;
        }
        config.tls.validate()
    }
}

/// The transport `config` asks for, with its files read and checked.
pub(crate) fn transport(config: &ServeConfig) -> anyhow::Result<Transport> {
    Ok(match config.tls.server()? {
        Some(server) => {
            tracing::info!(
                fingerprint = %server.certificate_fingerprint(),
                trust = %server.trust_description(),
                "TLS on the command channel (TLS 1.2/1.3, client certificate required)"
            );
            eprintln!(
                "TLS: publisher certificate SHA-256 {} (subscribers pin it with --pin-cert)",
                fingerprint::colon_form(server.certificate_fingerprint())
            );
            Transport::Tls(Arc::new(server))
        }
        None => Transport::Plain,
    })
}
