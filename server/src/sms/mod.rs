//! Text messages: providers (console, Twilio), the durable outbox, and registration guards.

pub mod console;
pub mod guard;
pub mod outbox;
pub mod twilio;

use std::time::Duration;

use clap::{Args, ValueEnum};

/// A text the provider accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// Provider's message id (Twilio `SM…`).
    pub sid: String,
    /// Provider status: `queued`, `accepted`, `sent`, ….
    pub status: String,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmsError {
    /// Definitely not processed (429, connection refused): safe to send again later.
    #[error("provider busy or unreachable ({0}); retry later")]
    Retryable(String),
    /// May have been accepted (timeout, 5xx): reconcile with the provider before sending again.
    #[error("outcome unknown ({0}); reconcile before resending")]
    InDoubt(String),
    /// Refused for good (invalid number, recipient opted out, …).
    #[error("rejected by provider (code {code})")]
    Rejected {
        /// Provider error code.
        code: String,
        /// The recipient replied STOP to our sender.
        opted_out: bool,
    },
}

/// Which provider sends texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// Send nothing: print that a text was due (in full, and listed at `GET /v1/dev/sms`, only
    /// with `--dev-sms` or `--demo` on a loopback bind). The embedded default.
    Console,
    /// Twilio's Messages API (or anything speaking it at `TWILIO_API_BASE`).
    Twilio,
}

/// SMS settings of `alertme serve`.
#[derive(Debug, Clone, Args)]
pub struct SmsConfig {
    /// Where texts go.
    #[arg(long, env = "ALERTME_SMS_PROVIDER", value_enum, default_value_t = Provider::Console)]
    pub sms_provider: Provider,
    /// Twilio Account SID (`AC…`).
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio Auth Token (also verifies Twilio's callbacks).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// Sender number (E.164) ...
    #[arg(long, env = "TWILIO_FROM")]
    pub twilio_from: Option<String>,
    /// ... or Messaging Service SID (`MG…`).
    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID")]
    pub twilio_messaging_service_sid: Option<String>,
    /// Base URL of the Messages API (a local fake in tests).
    #[arg(long, env = "TWILIO_API_BASE", default_value = "https://api.twilio.com")]
    pub twilio_api_base: String,
    /// A provider request not answered within this many ms is in doubt and reconciled.
    #[arg(long, env = "ALERTME_SMS_TIMEOUT_MS", default_value_t = 10_000)]
    pub sms_timeout_ms: u64,
    /// First retry delay in ms; doubles per attempt up to a minute.
    #[arg(long, env = "ALERTME_SMS_RETRY_MS", default_value_t = 1_000)]
    pub sms_retry_ms: u64,
    /// A text still `queued` this many seconds after the provider took it (its delivery reports
    /// lost) has its status fetched from the provider.
    #[arg(long, env = "ALERTME_SMS_STATUS_POLL_SECS", default_value_t = 300)]
    pub sms_status_poll_secs: u64,
    /// Verification codes expire after this many seconds.
    #[arg(long, env = "ALERTME_CODE_TTL_SECS", default_value_t = 600)]
    pub code_ttl_secs: u64,
    /// Registration texts per phone number per hour.
    #[arg(long, env = "ALERTME_REG_PER_NUMBER", default_value_t = 5)]
    pub reg_per_number: u32,
    /// Registration texts per number block (all but the last 4 digits) per hour: the SMS-pumping guard.
    #[arg(long, env = "ALERTME_REG_PER_PREFIX", default_value_t = 10)]
    pub reg_per_prefix: u32,
    /// Registration texts per client IP per hour.
    #[arg(long, env = "ALERTME_REG_PER_IP", default_value_t = 20)]
    pub reg_per_ip: u32,
    /// Registration texts per hour for the whole server (circuit breaker; at most a tenth of it
    /// in a burst).
    #[arg(long, env = "ALERTME_REG_GLOBAL", default_value_t = 500)]
    pub reg_global: u32,
    /// Countries whose numbers may sign in and be contacts (ISO codes, comma-separated, e.g.
    /// `DE,AT,CH`); empty for all. Texts to other countries are refused up front.
    #[arg(long, env = "ALERTME_SMS_COUNTRIES", value_delimiter = ',')]
    pub sms_countries: Vec<String>,
    /// Alert texts per person per hour (one per contact per alert); past it, alerts still reach
    /// responders but contacts are not texted. Follow-ups (all clear) always reach whoever was
    /// texted.
    #[arg(long, env = "ALERTME_ALERT_TEXTS_PER_HOUR", default_value_t = 30)]
    pub alert_texts_per_hour: u64,
}

/// The configured provider client.
#[derive(Clone)]
pub enum SmsClient {
    /// Prints texts.
    Console(console::Console),
    /// Talks to Twilio.
    Twilio(twilio::Twilio),
}

impl SmsClient {
    /// Builds the client from configuration; Twilio needs its credentials and a sender.
    /// `reveal` lets the console provider print texts in full and keep them for `/v1/dev/sms`.
    pub fn from_config(cfg: &SmsConfig, reveal: bool) -> anyhow::Result<Self> {
        Ok(match cfg.sms_provider {
            Provider::Console => Self::Console(console::Console::new(reveal)),
            Provider::Twilio => {
                Self::Twilio(twilio::Twilio::new(cfg, Duration::from_millis(cfg.sms_timeout_ms))?)
            }
        })
    }

    /// Sends one text.
    pub async fn send(&self, to: &str, body: &str, status_callback: &str) -> Result<Sent, SmsError> {
        match self {
            Self::Console(c) => Ok(c.send(to, body)),
            Self::Twilio(t) => t.send(to, body, status_callback).await,
        }
    }

    /// Looks for a text already accepted by the provider (after an ambiguous attempt).
    pub async fn find(&self, to: &str, body: &str) -> Result<Option<Sent>, SmsError> {
        match self {
            Self::Console(c) => Ok(c.find(to, body)),
            Self::Twilio(t) => t.find(to, body).await,
        }
    }

    /// The provider's current status of a message; `None` when the provider has no such query.
    pub async fn status(&self, sid: &str) -> Result<Option<String>, SmsError> {
        match self {
            Self::Console(_) => Ok(None),
            Self::Twilio(t) => t.status(sid).await.map(Some),
        }
    }

    /// The Twilio client, when that is the provider (for verifying webhooks).
    pub fn twilio(&self) -> Option<&twilio::Twilio> {
        match self {
            Self::Twilio(t) => Some(t),
            Self::Console(_) => None,
        }
    }
}
