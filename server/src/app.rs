//! Wires the layers into a server and owns every background task it runs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::demo;
use crate::cluster::Cluster;
use crate::config::ServeConfig;
use crate::domain::{self, Core, Settings};
use crate::live::Hub;
use crate::storage::{self, writer::Store};
use crate::web::state::AppState;
use crate::{clock, sms, telemetry, web};

/// Runs the server on an already bound listener until `shutdown` resolves.
///
/// Taking the listener (instead of binding here) lets tests bind `127.0.0.1:0` and learn the port.
pub async fn serve(
    cfg: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(cfg, listener, shutdown, Arc::new(clock::Clock::system())).await
}

/// [`serve`] with a clock of the caller's: tests run a server in-process on a manual clock.
pub async fn serve_with(
    cfg: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<clock::Clock>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    cfg.cluster.check(&cfg.db.url())?;
    let node_id = cfg.cluster.node_id(addr);
    let mode = if cfg.cluster.nats_url.is_some() { "cluster" } else { "single" };
    // Taken before migrations run; the writer lets go of it after its last commit.
    let only_server =
        storage::exclusive::take(&cfg.db.url(), Duration::from_millis(cfg.db_lock_wait_ms)).await?;
    let db = storage::connect(&cfg.db.url()).await?;
    let secret = domain::accounts::load_secret(cfg.secret.as_deref(), &cfg.db.data_dir)?;
    anyhow::ensure!(
        cfg.cluster.nats_url.is_none() || cfg.signing_key.is_some(),
        "cluster mode needs ALERTME_SIGNING_KEY: every node must sign evidence with the same key \
         (`alertme evidence new-key` makes one)"
    );
    let seal_key = domain::evidence::key::SealKey::load(cfg.signing_key.as_deref(), &cfg.db.data_dir)?;
    let settings = Settings {
        node_id: node_id.clone(),
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
        retention_days: cfg.retention_days,
        upload_max_bytes: cfg.upload_max_bytes,
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
    let stop = CancellationToken::new();
    // However this function returns (a stop, or an error on the way), every task stops with it.
    let _stop_on_return = stop.clone().drop_guard();
    let mut tasks = Tasks::new(stop.clone());
    let joined = match &cfg.cluster.nats_url {
        Some(url) => {
            let j =
                Cluster::connect(url, &cfg.cluster.nats_prefix, node_id.clone(), db.clone(), stop.clone())
                    .await
                    .context("joining the cluster")?;
            tracing::info!(prefix = %cfg.cluster.nats_prefix, "cluster mode: NATS connected");
            Some(j)
        }
        None => None,
    };
    let hub = joined.as_ref().map_or_else(Hub::new, |j| j.hub.clone());
    storage::recordings::import_part_files(&db, &cfg.db.data_dir.join("audio")).await?;
    // The writer checks ownership rows, which name this start of the node (its instance).
    let store =
        Store::start(&cfg.db.url(), joined.as_ref().map(|j| j.cluster.instance.clone()), only_server).await?;
    let mut core = Core::new(db, hub.clone(), store, settings, secret, seal_key, guard, clock);
    if let Some(url) = cfg.geocoder_url.as_deref().filter(|u| !u.is_empty()) {
        let g = crate::geocode::Geocoder::new(url, cfg.geocoder_per_sec, &core.settings.public_url)?;
        core.geocoder = Some(std::sync::Arc::new(g));
    }
    if let Some(j) = joined {
        let c = j.cluster.clone();
        core.cluster = Some(c.clone());
        c.use_store(core.store.clone());
        // Publishing and hearing other nodes outlive the stop until this node has drained.
        tasks.spawn_until("cluster publish", c.done(), c.clone().publish(j.outbound));
        tasks.spawn_until("cluster listen", c.done(), {
            let c = c.clone();
            async move {
                if let Err(e) = c.listen().await {
                    tracing::error!(error = %e, "cluster broadcasts stopped");
                }
            }
        });
        tasks.spawn("cluster renew", c.clone().renew());
        tasks.spawn("cluster changes", domain::alerts::reload_touched(core.clone(), j.touched));
        tasks.spawn("cluster adoption", domain::alerts::adopt_orphans(core.clone()));
    }
    let mut state = AppState::new(core, sms, stop.clone());
    let metrics = telemetry::install();
    metrics::gauge!(telemetry::NODE_INFO, "node" => node_id.clone(), "mode" => mode).set(1.0);
    state.metrics = Some(metrics.clone());
    tasks.spawn("metrics upkeep", telemetry::upkeep(metrics));
    tasks.spawn("timers", domain::timers::run(state.core.clone(), state.timers_wake.clone()));
    tasks.spawn("retention", domain::evidence::retention::run(state.core.clone()));
    tasks.spawn(
        "silence texts",
        domain::silence::watch(state.core.clone(), Duration::from_millis(cfg.phone_silent_text_ms.max(100))),
    );
    {
        let store = state.store.clone();
        tasks.spawn("durable writer", async move { store.died().await });
    }
    let sender = sms::outbox::Sender {
        db: state.db.clone(),
        client: state.sms.clone(),
        texts: domain::notify::SendTime(state.core.clone()),
        public_url: state.settings.public_url.clone(),
        retry_base: Duration::from_millis(cfg.sms.sms_retry_ms.max(10)),
        status_poll: Duration::from_secs(cfg.sms.sms_status_poll_secs.max(1)),
    };
    tasks.spawn("sms outbox", std::sync::Arc::new(sender).run(state.outbox.clone()));
    tasks.spawn(
        "revocations",
        domain::links::watch_revocations(hub.clone(), state.db.clone(), Duration::from_secs(2)),
    );
    {
        // Rate-limit state of clients that went quiet is dropped, so it stays bounded.
        let (guard, bad_tokens) = (state.guard.clone(), state.bad_tokens.clone());
        tasks.spawn("forget idle clients", async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                guard.forget_idle();
                bad_tokens.forget_idle();
            }
        });
    }
    let restored = domain::alerts::restore_active(&state).await.context("restoring active alerts")?;
    tasks.spawn("phone silence", hub.silence_watch(state.settings.phone_silence));
    let app = web::router(state.clone(), &cfg.static_dir);
    tracing::info!(%addr, restored, node = %node_id, mode, "AlertMe listening");
    println!("AlertMe is running on http://{addr}");
    println!("  node {node_id} ({mode} mode)");
    println!("  phones connect to   ws://{addr}/v1/phone   (alertme user add --name NAME --phone +E164 prints a device token)");
    println!(
        "  watch links look like {}/w/TOKEN; responders use {}/console",
        state.settings.public_url, state.settings.public_url
    );
    println!("  health: http://{addr}/healthz");
    if cfg.demo {
        let phone = demo::start(&state, addr, cfg.static_dir.clone()).await.context("starting the demo")?;
        tasks.spawn("demo phone", phone);
    }
    let limits = web::listen::Limits {
        header_timeout: Duration::from_millis(cfg.header_timeout_ms.max(100)),
        per_address: cfg.max_conns_per_address,
        trusted: cfg.trusted_proxies.clone(),
    };
    // The signal cancels `stop`: the accept loop ends, every socket closes with 1012 and every
    // background task ends.
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let watching = tokio::spawn(tasks.watch(exit_for_restart));
    web::listen::serve(listener, app, limits, stop.clone().cancelled_owned()).await.context("serving")?;
    state.sockets.close();
    if tokio::time::timeout(Duration::from_secs(5), state.sockets.wait()).await.is_err() {
        tracing::warn!(open = state.sockets.len(), "sockets still closing after 5 s; stopping anyway");
    }
    // What phones sent before their sockets closed is committed (acked or not, they resend).
    if tokio::time::timeout(Duration::from_secs(10), state.store.flush()).await.is_err() {
        tracing::warn!("the writer did not finish within 10 s");
    }
    // ... and, in a cluster, published, so that the nodes taking its alerts over see it.
    if let Some(c) = &state.cluster {
        if tokio::time::timeout(Duration::from_secs(5), c.finish()).await.is_err() {
            tracing::warn!("NATS did not take the last events within 5 s");
        }
    }
    let _ = watching.await;
    if let Some(c) = &state.cluster {
        c.stopped().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Every background task of a server: started here, each under its own span, and each ended by
/// the stop token. One that ends while the server is not stopping (a panic, a dead writer
/// thread) is reported to `on_death`: in production the process exits (code 70) so that its
/// supervisor restarts it, since a silently dead writer or outbox would stop acks or texts with
/// no alarm.
pub(crate) struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
    stop: CancellationToken,
}

impl Tasks {
    pub(crate) fn new(stop: CancellationToken) -> Self {
        Self { set: JoinSet::new(), names: HashMap::new(), stop }
    }

    /// Starts `work`, which should run as long as the server.
    pub(crate) fn spawn(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        let work = tracing::Instrument::instrument(work, tracing::info_span!("worker", name));
        let handle = self.set.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = work => {}
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Starts `work`, which runs past the stop until `until` (it must outlive the stop: a
    /// cluster node publishes its last commits after its sockets closed).
    pub(crate) fn spawn_until(
        &mut self,
        name: &'static str,
        until: CancellationToken,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        let work = tracing::Instrument::instrument(work, tracing::info_span!("worker", name));
        let handle = self.set.spawn(async move {
            tokio::select! {
                () = until.cancelled() => {}
                () = work => {}
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits for every task to end; reports each that ended before the stop.
    pub(crate) async fn watch(mut self, on_death: impl Fn(&'static str, &'static str)) {
        while let Some(ended) = self.set.join_next_with_id().await {
            let (id, why) = match &ended {
                Ok((id, ())) => (*id, "ended"),
                Err(e) if e.is_panic() => (e.id(), "panicked"),
                Err(e) => (e.id(), "was cancelled"),
            };
            let name = self.names.remove(&id).unwrap_or("unnamed");
            if !self.stop.is_cancelled() {
                tracing::error!(task = name, why, "a background task stopped");
                on_death(name, why);
            }
        }
    }
}

/// A background task died: exit so that the process supervisor restarts the server.
fn exit_for_restart(name: &'static str, why: &'static str) {
    eprintln!("AlertMe: the {name} task {why}; exiting (code 70) so that the server is restarted");
    std::process::exit(70);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_task_that_dies_is_reported_and_a_stop_is_not() {
        let stop = CancellationToken::new();
        let mut tasks = Tasks::new(stop.clone());
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("dies", async { panic!("boom") });
        tasks.spawn("returns", async {});
        let deaths = Arc::new(Mutex::new(Vec::new()));
        let seen = deaths.clone();
        let watching = tokio::spawn(tasks.watch(move |name, why| seen.lock().unwrap().push((name, why))));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), watching)
            .await
            .expect("all tasks end on stop")
            .unwrap();
        let mut deaths = deaths.lock().unwrap().clone();
        deaths.sort();
        assert_eq!(deaths, [("dies", "panicked"), ("returns", "ended")]);
    }
}
