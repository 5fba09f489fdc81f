//! `sttp`: the STTP publisher and subscriber command line.

mod cert;
mod serve;
mod serve_dataplane;
mod serve_tls;
mod subscribe;
mod subscribe_tls;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sttp",
    version,
    about = "STTP (IEEE 2664) publisher and subscriber"
)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a publisher (with the embedded demo PMU fleet unless configured otherwise).
    Serve(serve::ServeArgs),
    /// Connect to a publisher, subscribe and show or write what arrives.
    Subscribe(subscribe::SubscribeArgs),
    /// Make TLS keys and certificates (self-signed for pinning, or a private CA).
    Cert(cert::CertArgs),
}

fn init_logging(filter: Option<&str>, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging(cli.log.as_deref(), "info");
            runtime.block_on(serve::serve(args))
        }
        Command::Subscribe(args) => {
            init_logging(cli.log.as_deref(), "warn");
            runtime.block_on(subscribe::subscribe(args))
        }
        Command::Cert(args) => {
            init_logging(cli.log.as_deref(), "warn");
            cert::cert(args)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
