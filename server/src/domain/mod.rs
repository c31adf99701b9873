//! The domain: what an alert, a timer, a contact or a sign-in is, and the rules they follow.

pub mod accounts;
pub mod alerts;
pub mod contacts;
pub mod erasure;
pub mod evidence;
pub mod geozones;
pub mod ingest;
pub mod links;
pub mod notify;
pub mod pins;
pub mod places;
pub mod positions;
pub mod recordings;
pub mod registration;
pub mod silence;
pub mod timers;
pub mod uploads;
pub mod wording;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::live::Hub;

use crate::storage::writer::Store;
/// The database handle, passed through to the functions here.
pub use crate::storage::Db;

/// Runtime settings derived from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This server's node id (logs, `/healthz`, `/metrics`).
    pub node_id: String,
    /// Public base URL without a trailing slash.
    pub public_url: String,
    /// Browser origins allowed to open sockets.
    pub allowed_origins: Vec<String>,
    /// Ping interval; peers silent for 3 intervals are cut off.
    pub heartbeat: Duration,
    /// Phone silence after which watchers see "connection lost".
    pub phone_silence: Duration,
    /// Longest a single send to a watcher may take.
    pub send_timeout: Duration,
    /// A watcher that stops reading (answers no ping) is cut within this long (4410).
    pub watcher_stall: Duration,
    /// Phone socket message rate.
    pub phone_msgs_per_sec: u32,
    /// Phone socket byte rate in KiB.
    pub phone_kib_per_sec: u32,
    /// Verification codes live this long.
    pub code_ttl: Duration,
    /// Map tile URL template for the dashboard (`{z}/{x}/{y}`); empty for no tiles.
    pub tile_url: String,
    /// Attribution shown under the map.
    pub tile_attribution: String,
    /// Contacts' links work this long after their alert ended.
    pub link_ttl: Duration,
    /// Alert texts per person per hour.
    pub alert_texts_per_hour: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bearer token for `/metrics`; without it only loopback clients may read them.
    pub metrics_token: Option<String>,
    /// Days an ended alert's fixes and recordings are kept (0: for ever).
    pub retention_days: u32,
    /// Largest recording upload, in bytes.
    pub upload_max_bytes: u64,
}

/// How long another node's console summary of an alert counts without being repeated.
pub fn cluster_summary_fresh() -> std::time::Duration {
    crate::cluster::SUMMARY_FRESH
}

/// The parts the domain works with: storage, the live hub, the outbox, the clock and the
/// guards. Cheap to clone; the web layer's state wraps it.
#[derive(Clone)]
pub struct Core {
    /// Database.
    pub db: DatabaseConnection,
    /// Live sessions.
    pub hub: Hub,
    /// Durable writer.
    pub store: Store,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Key for deriving watch tokens.
    pub secret: Arc<Vec<u8>>,
    /// Signs evidence (chain heads, export manifests).
    pub seal_key: Arc<evidence::key::SealKey>,
    /// Wakes the SMS sender after outbox rows commit.
    pub outbox: crate::sms::outbox::Outbox,
    /// Registration-text and PIN guards.
    pub guard: Arc<crate::sms::guard::Guard>,
    /// Clock for deadlines (controllable in tests).
    pub clock: Arc<crate::clock::Clock>,
    /// Wakes the timer scheduler when timers change.
    pub timers_wake: Arc<tokio::sync::Notify>,
    /// People known to have no geozones, and since when (see `geozones::check`).
    pub zone_free: Arc<dashmap::DashMap<String, std::time::Instant>>,
    /// This node's part of a cluster (`None`: one server on its own).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The address service (`None`: not configured).
    pub geocoder: Option<Arc<crate::geocode::Geocoder>>,
}

impl Core {
    /// Bundles the parts (each one a distinct service: a struct of them would only rename this).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: DatabaseConnection,
        hub: Hub,
        store: Store,
        settings: Settings,
        secret: Vec<u8>,
        seal_key: evidence::key::SealKey,
        guard: crate::sms::guard::Guard,
        clock: Arc<crate::clock::Clock>,
    ) -> Self {
        Self {
            db,
            hub,
            store,
            settings: Arc::new(settings),
            secret: Arc::new(secret),
            seal_key: Arc::new(seal_key),
            outbox: Default::default(),
            guard: Arc::new(guard),
            clock,
            timers_wake: Arc::new(tokio::sync::Notify::new()),
            zone_free: Arc::new(dashmap::DashMap::new()),
            cluster: None,
            geocoder: None,
        }
    }

    /// Where a live alert changed outside its session (claimed, noted, ended): the session is
    /// told directly if this node owns it, else its owner reloads it.
    pub async fn changed(&self, alert_id: &str, apply: impl FnOnce(&crate::live::Session)) {
        match self.hub.get(alert_id) {
            Some(s) => apply(&s),
            None => {
                if let Some(c) = &self.cluster {
                    c.touch(alert_id).await;
                }
            }
        }
    }

    /// The watch link for a watch token.
    pub fn watch_url(&self, token: &str) -> String {
        format!("{}/w/{token}", self.settings.public_url)
    }
}
