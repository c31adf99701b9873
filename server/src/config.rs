//! Command line and environment configuration (`alertme --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// AlertMe: a self-hostable personal-safety SOS server.
#[derive(Debug, Parser)]
#[command(name = "alertme", version, about)]
pub struct Cli {
    /// What to do (default: `serve` with its defaults).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeConfig),
    /// Manage users (people who can raise an alert).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage a user's emergency contacts.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// Manage responders (people who watch the console).
    #[command(subcommand)]
    Responder(ResponderCmd),
    /// Watch links (what emergency contacts open).
    #[command(subcommand)]
    Link(LinkCmd),
    /// Evidence: the signing key, signed bundles of an alert, and their offline check.
    #[command(subcommand)]
    Evidence(EvidenceCmd),
    /// Check-in timers from the command line, as a phone would use them (`alertme timer --help`).
    Timer(crate::cli::timer::TimerArgs),
    /// Create N users with a device token each, printing the tokens (used by `alertme-tools bench`).
    #[command(hide = true)]
    BenchUsers {
        /// How many.
        #[arg(long)]
        count: usize,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Apply database migrations and exit.
    Migrate(DbArgs),
}

/// Evidence commands.
#[derive(Debug, Subcommand)]
pub enum EvidenceCmd {
    /// Print the public key evidence is signed with (what `verify --key` takes).
    Key {
        /// The signing key, if configured (else DATA_DIR/evidence-signing.key).
        #[arg(long, env = "ALERTME_SIGNING_KEY", hide_env_values = true)]
        signing_key: Option<String>,
        /// Database location (its data dir holds the key).
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a new random signing key, for ALERTME_SIGNING_KEY (a cluster's nodes share one).
    NewKey,
    /// Write an alert's signed evidence bundle (a zip) to a file.
    Export {
        /// The alert's id.
        alert: String,
        /// Where to write it.
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// The signing key, if configured (else DATA_DIR/evidence-signing.key).
        #[arg(long, env = "ALERTME_SIGNING_KEY", hide_env_values = true)]
        signing_key: Option<String>,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check a bundle offline: says "valid" or names the first file or item that does not match.
    Verify {
        /// The bundle (zip).
        bundle: std::path::PathBuf,
        /// The server's public key (base64 or hex), from `/v1/evidence/key` or `alertme evidence key`.
        #[arg(long)]
        key: Option<String>,
    },
}

/// User management.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user (or add a device to an existing one) and print a new device token.
    Add {
        /// Display name shown to contacts and responders.
        #[arg(long)]
        name: String,
        /// Phone number in E.164 form, e.g. +4915112345678.
        #[arg(long)]
        phone: String,
        /// Language of the texts to their contacts (en, ru), for a new user.
        #[arg(long)]
        language: Option<String>,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Erase a person and all their data, confirmed with their PIN (alerts on legal hold stay
    /// until the hold is lifted).
    Erase {
        /// Their phone number (E.164).
        #[arg(long)]
        phone: String,
        /// Their PIN (the one they cancel alerts with).
        #[arg(long)]
        pin: String,
        /// Server secret, as the server has it (default DATA_DIR/secret.key): PINs are keyed with it.
        #[arg(long, env = "ALERTME_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Emergency contact management.
#[derive(Debug, Subcommand)]
pub enum ContactCmd {
    /// Add an emergency contact to a user (they get an informational text).
    Add {
        /// The user's phone number (E.164).
        #[arg(long)]
        user: String,
        /// Contact's name.
        #[arg(long)]
        name: String,
        /// Contact's phone number (E.164).
        #[arg(long)]
        phone: String,
        /// Language of their texts (en, ru); default the user's.
        #[arg(long)]
        language: Option<String>,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a user's emergency contacts.
    List {
        /// The user's phone number (E.164).
        #[arg(long)]
        user: String,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Responder management.
#[derive(Debug, Subcommand)]
pub enum ResponderCmd {
    /// Create a responder and print their token.
    Add {
        /// Display name shown to everyone watching an alert.
        #[arg(long)]
        name: String,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a responder: their token stops working and open consoles close within seconds.
    Revoke {
        /// The responder's id or exact name.
        who: String,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Watch link management.
#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Revoke an alert's watch links: one contact's (`--contact ID`) or all of them. Open pages
    /// close within seconds.
    Revoke {
        /// The alert id.
        #[arg(long)]
        alert: String,
        /// The contact id (`alertme contact list`); without it, every link of the alert.
        #[arg(long)]
        contact: Option<String>,
        /// Database location.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Where data lives.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database URL: `sqlite://PATH?mode=rwc` (default: under the data dir) or `postgres://…`.
    #[arg(long, env = "ALERTME_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the SQLite file, audio recordings and the server secret.
    #[arg(long, env = "ALERTME_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

impl DbArgs {
    /// The database URL, defaulting to a SQLite file in the data dir.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("alertme.db").display()))
    }
}

/// Settings of `alertme serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "ALERTME_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Database and data directory.
    #[command(flatten)]
    pub db: DbArgs,
    /// Public base URL used in watch links (default: http://BIND as bound).
    #[arg(long, env = "ALERTME_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Extra browser origins allowed to open sockets (comma-separated); the public URL's is always allowed.
    #[arg(long, env = "ALERTME_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Secret for deriving watch tokens (default: generated once into DATA_DIR/secret.key).
    /// Servers sharing one PostgreSQL database must share it.
    #[arg(long, env = "ALERTME_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Ed25519 key that signs evidence (32 bytes, base64 or hex; default: generated once into
    /// DATA_DIR/evidence-signing.key). Every node of a cluster must have the same one.
    #[arg(long, env = "ALERTME_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// Fixes and recordings of alerts that ended more than this many days ago are deleted
    /// (unless a responder put the alert on legal hold); 0 keeps them for ever.
    #[arg(long, env = "ALERTME_RETENTION_DAYS", default_value_t = 90)]
    pub retention_days: u32,
    /// A Nominatim-compatible reverse geocoder (e.g. https://nominatim.openstreetmap.org, or
    /// your own): pages show the address near the person's position. Off when unset. Positions
    /// are sent to it rounded to ~11 m; check its usage policy (the public Nominatim allows one
    /// request a second and no heavy use).
    #[arg(long, env = "ALERTME_GEOCODER_URL")]
    pub geocoder_url: Option<String>,
    /// Requests a second to the geocoder at most (its usage policy; answers are cached).
    #[arg(long, env = "ALERTME_GEOCODER_PER_SEC", default_value_t = 1)]
    pub geocoder_per_sec: u32,
    /// Largest recording a phone may upload (`POST /v1/alerts/{id}/recording`), in bytes.
    #[arg(long, env = "ALERTME_UPLOAD_MAX_BYTES", default_value_t = 200_000_000)]
    pub upload_max_bytes: u64,
    /// Server → client ping interval on every socket, in ms; a peer silent for 3 intervals is cut off.
    #[arg(long, env = "ALERTME_HEARTBEAT_MS", default_value_t = 10_000)]
    pub heartbeat_ms: u64,
    /// A phone heard from less recently than this (ms) is shown to watchers as "connection lost".
    #[arg(long, env = "ALERTME_PHONE_SILENCE_MS", default_value_t = 20_000)]
    pub phone_silence_ms: u64,
    /// An SOS phone silent (no fix, audio or heartbeat) this many ms gets its contacts texted,
    /// once, with the last known position.
    #[arg(long, env = "ALERTME_PHONE_SILENT_TEXT_MS", default_value_t = 120_000)]
    pub phone_silent_text_ms: u64,
    /// A send to a watcher that does not complete within this many ms closes that watcher.
    #[arg(long, env = "ALERTME_SEND_TIMEOUT_MS", default_value_t = 5_000)]
    pub send_timeout_ms: u64,
    /// A watcher that stops reading its socket (answers no ping) is closed with 4410 within
    /// this many ms; it can reconnect and resume. Watchers are pinged every third of it.
    #[arg(long, env = "ALERTME_WATCHER_STALL_MS", default_value_t = 10_000)]
    pub watcher_stall_ms: u64,
    /// Per phone socket: messages per second (reads beyond it are paced, never dropped).
    #[arg(long, env = "ALERTME_PHONE_MSGS_PER_SEC", default_value_t = 500)]
    pub phone_msgs_per_sec: u32,
    /// Per phone socket: KiB per second (reads beyond it are paced, never dropped).
    #[arg(long, env = "ALERTME_PHONE_KIB_PER_SEC", default_value_t = 512)]
    pub phone_kib_per_sec: u32,
    /// A connection must send a complete request head within this many ms of opening and of its
    /// previous answer; slower or idle connections are closed.
    #[arg(long, env = "ALERTME_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// How long a starting server waits for another one using the same SQLite database to stop
    /// (a restart whose old process is finishing its last commits) before it gives up.
    #[arg(long, env = "ALERTME_DB_LOCK_WAIT_MS", default_value_t = 30_000)]
    pub db_lock_wait_ms: u64,
    /// Open connections (sockets included) per client address, an IPv6 /64 counting as one;
    /// more are closed at once. 0 for no cap.
    #[arg(long, env = "ALERTME_MAX_CONNS_PER_ADDRESS", default_value_t = 500)]
    pub max_conns_per_address: usize,
    /// Bearer token that lets a scraper read `/metrics`; without one only loopback clients can.
    #[arg(long, env = "ALERTME_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Proxies (IP or CIDR, comma-separated) whose `X-Forwarded-For` names the client; from
    /// anyone else the header is ignored and the socket's peer address counts.
    #[arg(long, env = "ALERTME_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Contacts' watch links stop working this many seconds after their alert ended (the
    /// page then says the link expired). Responders keep access.
    #[arg(long, env = "ALERTME_LINK_TTL_SECS", default_value_t = 72 * 3600)]
    pub link_ttl_secs: u64,
    /// Text messages.
    #[command(flatten)]
    pub sms: crate::sms::SmsConfig,
    /// Map tiles for the dashboard, `{z}/{x}/{y}` template; empty for none (the trail still
    /// draws on a plain background with a scale).
    #[arg(long, env = "ALERTME_TILE_URL", default_value = "https://tile.openstreetmap.org/{z}/{x}/{y}.png")]
    pub tile_url: String,
    /// Attribution the tile provider requires.
    #[arg(long, env = "ALERTME_TILE_ATTRIBUTION", default_value = "© OpenStreetMap contributors")]
    pub tile_attribution: String,
    /// Also run a simulated phone that streams a demo walk and recording in a loop, and print
    /// a watch link and a responder token to try the dashboard at once. On a loopback bind it
    /// implies `--dev-sms`.
    #[arg(long, env = "ALERTME_DEMO")]
    pub demo: bool,
    /// With the console SMS provider: print texts in full (sign-in codes, watch links) and list
    /// them at `GET /v1/dev/sms`, for local development. Only on a loopback bind: anyone who can
    /// read them can take over any account.
    #[arg(long, env = "ALERTME_DEV_SMS")]
    pub dev_sms: bool,
    /// Directory of static files (the dashboard build) served at `/`.
    #[arg(long, env = "ALERTME_STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,
    /// Cluster mode (docs/cluster.md).
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Several `alertme serve` nodes behind one address, sharing a PostgreSQL database and a NATS
/// server with JetStream.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// NATS server (`nats://host:4222`, comma-separated for a NATS cluster); turns cluster mode
    /// on. Needs a `postgres://` database.
    #[arg(long, env = "ALERTME_NATS_URL")]
    pub nats_url: Option<String>,
    /// This node's id, shown in logs, `/healthz` and `/metrics` (default: host name and port).
    #[arg(long, env = "ALERTME_NODE_ID")]
    pub node_id: Option<String>,
    /// Prefix of every NATS subject and stream name, so that several deployments (or test runs)
    /// share one NATS. Letters, digits, `_` and `-`.
    #[arg(long, env = "ALERTME_NATS_PREFIX", default_value = "alertme")]
    pub nats_prefix: String,
}

impl ClusterArgs {
    /// This node's id: the configured one, else host name and port.
    pub fn node_id(&self, bound: SocketAddr) -> String {
        self.node_id.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "alertme".into());
            format!("{host}-{}", bound.port())
        })
    }

    /// Refuses settings cluster mode cannot run with (before anything starts).
    pub fn check(&self, database_url: &str) -> anyhow::Result<()> {
        let Some(_) = &self.nats_url else { return Ok(()) };
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            anyhow::bail!(
                "cluster mode (--nats-url / ALERTME_NATS_URL) needs a shared PostgreSQL database \
                 (--database-url postgres://…); SQLite is one node's file and cannot be shared"
            );
        }
        let p = &self.nats_prefix;
        if p.is_empty()
            || p.len() > 40
            || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            anyhow::bail!("--nats-prefix {p:?}: use 1 to 40 letters, digits, '_' or '-'");
        }
        Ok(())
    }
}

impl ServeConfig {
    /// Whether console texts are shown in full and listed; refuses `--dev-sms` on a bind that
    /// other machines can reach.
    pub fn reveal_texts(&self) -> anyhow::Result<bool> {
        let loopback = self.bind.ip().is_loopback();
        if self.dev_sms && !loopback {
            anyhow::bail!(
                "--dev-sms (ALERTME_DEV_SMS) shows every sign-in code to whoever asks; it works only on a \
                 loopback bind, not on {}",
                self.bind
            );
        }
        Ok(loopback && (self.dev_sms || self.demo) && self.sms.sms_provider == crate::sms::Provider::Console)
    }

    /// Public base URL without a trailing slash; by default the address actually bound.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{bound}")).trim_end_matches('/').to_owned()
    }
}

/// `10.0.0.0/8` or a single address.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR block"))
}
