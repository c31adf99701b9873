//! Chain of custody: every watch-socket open and close, recording download and evidence export.

use hmac::{Hmac, Mac};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};
use sha2::Sha256;

use crate::storage::entity::custody;
use crate::storage::writer::Store;

/// Who touched an alert's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A watch link, by its label ("device" for the person's own, "contact:ID" for a contact's).
    Link(String),
    /// A responder.
    Responder {
        /// Responder id.
        id: String,
        /// Their name then.
        name: String,
    },
    /// One of the person's own devices.
    Device(String),
    /// Whoever runs the command line on the server.
    Operator,
}

impl Who {
    /// How it is stored: `link:LABEL`, `responder:ID`, `device:ID`, `operator`.
    pub fn stored(&self) -> String {
        match self {
            Who::Link(label) => format!("link:{label}"),
            Who::Responder { id, .. } => format!("responder:{id}"),
            Who::Device(id) => format!("device:{id}"),
            Who::Operator => "operator".into(),
        }
    }

    /// A responder's name, kept beside the id.
    fn name(&self) -> Option<String> {
        match self {
            Who::Responder { name, .. } => Some(name.clone()),
            _ => None,
        }
    }

    /// Whether this is a responder (they see what the person's side does not, e.g. duress).
    pub fn is_responder(&self) -> bool {
        matches!(self, Who::Responder { .. } | Who::Operator)
    }
}

/// What happened.
pub mod action {
    /// A watch socket opened.
    pub const WATCH_OPENED: &str = "watch_opened";
    /// A watch socket closed (detail: how long it was open).
    pub const WATCH_CLOSED: &str = "watch_closed";
    /// A recording part was downloaded (detail: which).
    pub const RECORDING_DOWNLOADED: &str = "recording_downloaded";
    /// An evidence bundle was exported.
    pub const EVIDENCE_EXPORTED: &str = "evidence_exported";
    /// A legal hold was put on the alert (detail: the reason).
    pub const HOLD_SET: &str = "hold_set";
    /// The legal hold was lifted.
    pub const HOLD_LIFTED: &str = "hold_lifted";
}

/// A keyed hash of a client's address: the same address gives the same mark in one deployment,
/// and the mark does not give the address back (no dictionary of the IPv4 space without the key).
pub fn addr_hash(secret: &[u8], ip: std::net::IpAddr) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"alertme-custody-addr-v1\0");
    mac.update(ip.to_string().as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..12])
}

/// One custody entry's row.
fn row(
    alert_id: &str,
    action: &str,
    who: &Who,
    addr: Option<String>,
    detail: Option<String>,
) -> custody::ActiveModel {
    let detail = match (detail, who.name()) {
        (Some(d), Some(n)) => Some(format!("{n}: {d}")),
        (d, n) => d.or(n),
    };
    custody::ActiveModel {
        id: Default::default(),
        alert_id: Set(alert_id.to_owned()),
        at: Set(crate::now_ms()),
        action: Set(action.to_owned()),
        who: Set(who.stored()),
        addr_hash: Set(addr),
        detail: Set(detail.map(|d| d.chars().take(500).collect())),
    }
}

/// Records one custody entry, now (an export, a hold: rare, and part of what the caller does).
pub async fn record<C: ConnectionTrait>(
    db: &C,
    alert_id: &str,
    action: &str,
    who: &Who,
    addr: Option<String>,
    detail: Option<String>,
) -> crate::error::Result<()> {
    row(alert_id, action, who, addr, detail).insert(db).await?;
    Ok(())
}

/// Records an entry without holding up the caller (a socket opening, a download): it commits
/// with the durable writer's next batch.
pub fn record_soon(
    store: &Store,
    alert_id: &str,
    action: &'static str,
    who: &Who,
    addr: Option<String>,
    detail: Option<String>,
) {
    store.custody(row(alert_id, action, who, addr, detail));
}

/// A watch socket in the custody log: its opening when made, its closing (and how long it was
/// open) when dropped.
pub struct Watching {
    store: Store,
    alert_id: String,
    who: Option<Who>,
    mark: String,
    since: std::time::Instant,
}

impl Watching {
    /// Records the opening.
    pub fn opened(store: &Store, alert_id: &str, who: Who, mark: String) -> Self {
        record_soon(store, alert_id, action::WATCH_OPENED, &who, Some(mark.clone()), None);
        Self {
            store: store.clone(),
            alert_id: alert_id.to_owned(),
            who: Some(who),
            mark,
            since: std::time::Instant::now(),
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        // Not while the runtime itself goes away (nothing could run the write).
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (Some(who), mark) = (self.who.take(), std::mem::take(&mut self.mark)) else { return };
        let open = format!("open {} s", self.since.elapsed().as_secs());
        record_soon(&self.store, &self.alert_id, action::WATCH_CLOSED, &who, Some(mark), Some(open));
    }
}
