//! `alertme-tools`: what developers and testers run against an AlertMe server, kept out of the
//! production binary: a simulated phone, the load generator, and a local fake of Twilio.

mod bench;
mod fake_twilio;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// AlertMe's development tools.
#[derive(Debug, Parser)]
#[command(name = "alertme-tools", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a phone: stream a GPX track and an audio recording as an SOS.
    Phone(alertme_client::PhoneArgs),
    /// Load generator: drive phones and watchers against a server on loopback and report.
    Bench(bench::BenchArgs),
    /// A local stand-in for Twilio's Messages API (tests and development without credentials).
    FakeTwilio(fake_twilio::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Phone(args) => alertme_client::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::FakeTwilio(args) => fake_twilio::run(args).await,
    }
}
