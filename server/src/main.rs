//! `alertme`: the server, operator commands and the phone simulator in one binary.

use alertme_server::config::{Cli, Command, ContactCmd, EvidenceCmd, LinkCmd, ResponderCmd, UserCmd};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Thousands of sockets allocating and freeing small buffers on every frame: with mimalloc the
/// fan-out benchmark spent 5-9 % less CPU per frame and 13-26 % less memory (benchmarks.md).
/// Built without transparent huge pages (`no_thp` in Cargo.toml): with them each 2 MB region
/// it touched first was zeroed whole, and the server held 10-20 % more memory for no CPU saved.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let command = Cli::parse().command.unwrap_or_else(|| {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            serve: alertme_server::config::ServeConfig,
        }
        Command::Serve(Defaults::parse_from(["alertme"]).serve)
    });
    match command {
        Command::Serve(cfg) => {
            // Refuse unsafe settings before the port is even opened.
            cfg.reveal_texts()?;
            let listener = match tokio::net::TcpListener::bind(cfg.bind).await {
                Ok(l) => l,
                Err(e) => {
                    // A plain sentence for the person starting it, not a stack trace.
                    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                        " (another program, maybe another AlertMe, listens there)"
                    } else {
                        ""
                    };
                    eprintln!(
                        "AlertMe cannot listen on {}: {e}{hint}. Choose another address with --bind or ALERTME_BIND, e.g. --bind 127.0.0.1:8081.",
                        cfg.bind
                    );
                    std::process::exit(2);
                }
            };
            alertme_server::serve(cfg, listener, shutdown_signal()).await
        }
        Command::User(UserCmd::Add { name, phone, language, db }) => {
            alertme_server::cli::user_add(&name, &phone, language.as_deref(), &db).await
        }
        Command::User(UserCmd::Erase { phone, pin, secret, db }) => {
            alertme_server::cli::user_erase(&phone, &pin, secret.as_deref(), &db).await
        }
        Command::Contact(ContactCmd::Add { user, name, phone, language, db }) => {
            alertme_server::cli::contact_add(&user, &name, &phone, language.as_deref(), &db).await
        }
        Command::Contact(ContactCmd::List { user, db }) => {
            alertme_server::cli::contact_list(&user, &db).await
        }
        Command::Responder(ResponderCmd::Add { name, db }) => {
            alertme_server::cli::responder_add(&name, &db).await
        }
        Command::Responder(ResponderCmd::Revoke { who, db }) => {
            alertme_server::cli::responder_revoke(&who, &db).await
        }
        Command::Link(LinkCmd::Revoke { alert, contact, db }) => {
            alertme_server::cli::link_revoke(&alert, contact.as_deref(), &db).await
        }
        Command::Evidence(EvidenceCmd::Key { signing_key, db }) => {
            alertme_server::cli::evidence::key(signing_key.as_deref(), &db)
        }
        Command::Evidence(EvidenceCmd::NewKey) => alertme_server::cli::evidence::new_key(),
        Command::Evidence(EvidenceCmd::Export { alert, output, signing_key, db }) => {
            alertme_server::cli::evidence::export(&alert, &output, signing_key.as_deref(), &db).await
        }
        Command::Evidence(EvidenceCmd::Verify { bundle, key }) => {
            alertme_server::cli::evidence::verify(&bundle, key.as_deref())
        }
        Command::Timer(args) => alertme_server::cli::timer::run(args).await,
        Command::BenchUsers { count, db } => alertme_server::cli::bench_users(count, &db).await,
        Command::Migrate(db) => alertme_server::storage::connect(&db.url()).await.map(|_| ()),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
