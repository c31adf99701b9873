//! AlertMe server: phones stream an SOS in, watchers and responders follow it live.
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod e164;
pub mod error;
pub mod live;
pub mod media;
pub mod sms;
pub mod storage;
pub mod telemetry;
mod web;

#[cfg(test)]
mod layout;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::live::Hub;
use crate::domain::{Core, Settings};
use crate::web::state::AppState;
use crate::storage::writer::Store;

/// Milliseconds since the Unix epoch, server clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Runs the server on an already bound listener until `shutdown` resolves.
///
/// Taking the listener (instead of binding here) lets tests bind `127.0.0.1:0` and learn the port.
pub async fn serve(
    cfg: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let db = storage::connect(&cfg.db.url()).await?;
    let secret = domain::accounts::load_secret(cfg.secret.as_deref(), &cfg.db.data_dir)?;
    let settings = Settings {
        public_url: cfg.public_url(addr),
        allowed_origins: cfg.allowed_origins.clone(),
        heartbeat: Duration::from_millis(cfg.heartbeat_ms.max(50)),
        phone_silence: Duration::from_millis(cfg.phone_silence_ms.max(100)),
        send_timeout: Duration::from_millis(cfg.send_timeout_ms.max(50)),
        watcher_stall: Duration::from_millis(cfg.watcher_stall_ms.max(60)),
        phone_msgs_per_sec: cfg.phone_msgs_per_sec,
        phone_kib_per_sec: cfg.phone_kib_per_sec,
        code_ttl: Duration::from_secs(cfg.sms.code_ttl_secs.max(1)),
        tile_url: cfg.tile_url.clone(),
        tile_attribution: cfg.tile_attribution.clone(),
        link_ttl: Duration::from_secs(cfg.link_ttl_secs),
        alert_texts_per_hour: cfg.sms.alert_texts_per_hour,
        trusted_proxies: cfg.trusted_proxies.clone(),
        metrics_token: cfg.metrics_token.clone().filter(|t| !t.is_empty()),
    };
    let reveal = cfg.reveal_texts()?;
    let sms = sms::SmsClient::from_config(&cfg.sms, reveal)?;
    if cfg.sms.sms_provider == sms::Provider::Console && !addr.ip().is_loopback() {
        tracing::warn!("no SMS provider: sign-in codes and alerts to contacts are NOT sent (ALERTME_SMS_PROVIDER=twilio)");
        eprintln!(
            "WARNING: AlertMe listens on {addr} but has no SMS provider: nobody can sign in and no emergency \
             contact is texted. Set ALERTME_SMS_PROVIDER=twilio and its credentials (README)."
        );
    }
    let guard = sms::guard::Guard::new(&cfg.sms);
    let hub = Hub::new();
    storage::recordings::import_part_files(&db, &cfg.db.data_dir.join("audio")).await?;
    let store = Store::start(&cfg.db.url()).await?;
    let clock = if cfg.test_clock {
        tracing::warn!("test clock enabled: POST /v1/test/clock moves time forward");
        clock::Clock::controllable(cfg.db.data_dir.join("test-clock-offset-ms"))
    } else {
        clock::Clock::system()
    };
    let core = Core::new(db, hub.clone(), store, settings, secret, guard, clock);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut state = AppState::new(core, sms, stop.clone());
    let metrics = telemetry::install();
    state.metrics = Some(metrics.clone());
    supervise("metrics upkeep", &stop, telemetry::upkeep(metrics));
    supervise("timers", &stop, domain::timers::run(state.core.clone(), state.timers_wake.clone()));
    supervise(
        "silence texts",
        &stop,
        domain::alerts::watch_silence(state.core.clone(), Duration::from_millis(cfg.phone_silent_text_ms.max(100))),
    );
    {
        let store = state.store.clone();
        supervise("durable writer", &stop, async move { store.died().await });
    }
    let sender = sms::outbox::Sender {
        db: state.db.clone(),
        client: state.sms.clone(),
        texts: domain::notify::SendTime {
            db: state.db.clone(),
            hub: hub.clone(),
            secret: state.secret.clone(),
            public_url: state.settings.public_url.clone(),
        },
        public_url: state.settings.public_url.clone(),
        retry_base: Duration::from_millis(cfg.sms.sms_retry_ms.max(10)),
        status_poll: Duration::from_secs(cfg.sms.sms_status_poll_secs.max(1)),
    };
    supervise("sms outbox", &stop, std::sync::Arc::new(sender).run(state.outbox.clone()));
    supervise(
        "revocations",
        &stop,
        domain::links::watch_revocations(hub.clone(), state.db.clone(), Duration::from_secs(2)),
    );
    {
        // Rate-limit state of clients that went quiet is dropped, so it stays bounded.
        let (guard, bad_tokens) = (state.guard.clone(), state.bad_tokens.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                guard.forget_idle();
                bad_tokens.forget_idle();
            }
        });
    }
    let restored = domain::alerts::restore_active(&state).await.context("restoring active alerts")?;
    hub.spawn_silence_watch(state.settings.phone_silence);
    let app = web::router(state.clone(), &cfg.static_dir);
    tracing::info!(%addr, restored, "AlertMe listening");
    println!("AlertMe is running on http://{addr}");
    println!("  phones connect to   ws://{addr}/v1/phone   (alertme user add --name NAME --phone +E164 prints a device token)");
    println!(
        "  watch links look like {}/w/TOKEN; responders use {}/console",
        state.settings.public_url, state.settings.public_url
    );
    println!("  health: http://{addr}/healthz");
    if cfg.demo {
        cli::demo::start(&state, addr, cfg.static_dir.clone()).await.context("starting the demo")?;
    }
    let limits = web::listen::Limits {
        header_timeout: Duration::from_millis(cfg.header_timeout_ms.max(100)),
        per_address: cfg.max_conns_per_address,
        trusted: cfg.trusted_proxies.clone(),
    };
    // The signal cancels `stop`: the accept loop ends, and every socket closes with 1012.
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    web::listen::serve(listener, app, limits, stop.clone().cancelled_owned()).await.context("serving")?;
    state.sockets.close();
    if tokio::time::timeout(Duration::from_secs(5), state.sockets.wait()).await.is_err() {
        tracing::warn!(open = state.sockets.len(), "sockets still closing after 5 s; stopping anyway");
    }
    // What phones sent before their sockets closed is committed (acked or not, they resend).
    if tokio::time::timeout(Duration::from_secs(10), state.store.flush()).await.is_err() {
        tracing::warn!("the writer did not finish within 10 s");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Watches a background task that must run as long as the server: if it ends (a panic) while
/// the server is not stopping, the process exits (code 70) so that its supervisor restarts it.
/// A silently dead writer or outbox would stop acks or texts with no alarm.
fn supervise(
    name: &'static str,
    stop: &tokio_util::sync::CancellationToken,
    work: impl Future<Output = ()> + Send + 'static,
) {
    // Every log line of the task names it.
    let task = tokio::spawn(tracing::Instrument::instrument(work, tracing::info_span!("worker", name)));
    let stop = stop.clone();
    tokio::spawn(async move {
        let ended = task.await;
        if stop.is_cancelled() {
            return;
        }
        let why = match &ended {
            Err(e) if e.is_panic() => "panicked",
            _ => "ended",
        };
        tracing::error!(
            task = name,
            why,
            "a background task stopped; exiting so that the server is restarted"
        );
        eprintln!("AlertMe: the {name} task {why}; exiting (code 70) so that the server is restarted");
        std::process::exit(70);
    });
}
