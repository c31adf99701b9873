//! Wire types of the AlertMe protocol, shared by the server, the dashboard and phone clients.
//!
//! Everything here is plain serde so it builds for `wasm32-unknown-unknown` too. The prose
//! specification, with examples, is `docs/protocol.md`; keep the two in step.
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

pub mod adts;
pub mod audio;

/// Major protocol version, carried in every socket path (`/v1/...`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest WebSocket message the server accepts, text or binary (64 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One position fix as the phone reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// Per-alert fix sequence number, chosen by the phone: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// Latitude in degrees (WGS 84), -90..=90.
    pub lat: f64,
    /// Longitude in degrees (WGS 84), -180..=180.
    pub lon: f64,
    /// Horizontal accuracy radius in metres (68 % confidence), >= 0.
    pub accuracy_m: f64,
    /// When the phone took the fix, milliseconds since the Unix epoch (device clock).
    pub time_ms: i64,
    /// Battery level in percent, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<u8>,
    /// Ground speed in metres per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
    /// Course over ground in degrees clockwise from true north, 0..360.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// Altitude in metres above the WGS 84 ellipsoid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_m: Option<f64>,
}

impl Fix {
    /// Checks ranges; returns what is wrong in words a client developer can act on.
    pub fn validate(&self) -> Result<(), String> {
        if self.seq == 0 {
            return Err("fix seq starts at 1".into());
        }
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err("lat must be within -90..=90".into());
        }
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return Err("lon must be within -180..=180".into());
        }
        if !(self.accuracy_m.is_finite() && self.accuracy_m >= 0.0 && self.accuracy_m < 1.0e6) {
            return Err("accuracy_m must be a finite number >= 0".into());
        }
        if self.battery_pct.is_some_and(|b| b > 100) {
            return Err("battery_pct must be within 0..=100".into());
        }
        for (name, v) in [
            ("speed_mps", self.speed_mps),
            ("heading_deg", self.heading_deg),
            ("altitude_m", self.altitude_m),
        ] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(format!("{name} must be finite"));
            }
        }
        Ok(())
    }
}

/// Cumulative acknowledgements: everything up to and including these sequence numbers is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acks {
    /// Highest fix seq such that every fix 1..=fix is stored.
    pub fix: u64,
    /// Highest audio chunk seq such that every chunk 1..=audio is stored.
    pub audio: u64,
}

/// Lifecycle state of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Live: the phone streams and watchers follow.
    Active,
    /// Ended by a responder or by the person: help arrived or the situation is over.
    Resolved,
    /// Ended by the person as a false alarm.
    Cancelled,
}

impl AlertStatus {
    /// The stored, wire and log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "resolved" => Some(Self::Resolved),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Why the phone ends an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The person is safe.
    Resolve,
    /// False alarm.
    Cancel,
}

/// Messages the phone sends as JSON text frames on `/v1/phone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PhoneMsg {
    /// Start an SOS, or resume it when `client_id` was used before by this user.
    Start {
        /// Client-chosen id (UUID recommended) that makes a retried start idempotent.
        client_id: String,
        /// MIME type of the audio this phone will send, e.g. `audio/aac`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_mime: Option<String>,
        /// Device time of the button press, ms since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pressed_at_ms: Option<i64>,
    },
    /// One or more position fixes (a backlog may be sent as one batch of up to 100).
    Fix {
        /// The fixes, in any order.
        fixes: Vec<Fix>,
    },
    /// A position outside an SOS (e.g. once a minute while a check-in timer runs): kept as the
    /// last known position. Not acknowledged; it needs no `start`.
    Track {
        /// The fix (`seq` is ignored).
        fix: Fix,
    },
    /// Keep-alive; the server answers `pong`.
    Ping {
        /// Echoed back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t: Option<i64>,
    },
    /// The recorder restarted in another format (the camera switched on or off): chunks from
    /// the next one that begins a recording are in `mime`. Send it right before that chunk,
    /// and again after `start` on a new connection when the format differs from `start`'s.
    Media {
        /// MIME type, as for `start`'s `audio_mime` (`video/webm;codecs=vp8,opus`, …).
        mime: String,
    },
    /// End the alert.
    Stop {
        /// Resolve or cancel.
        reason: StopReason,
    },
}

/// Messages the server sends as JSON text frames on `/v1/phone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PhoneServerMsg {
    /// First message on every phone socket.
    Welcome {
        /// Protocol major version served.
        protocol: u32,
        /// Server software version.
        server: String,
        /// Limits the client must respect.
        limits: Limits,
        /// The user's alert that is still active, if any, so a restarted app can resume it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_alert: Option<ActiveAlertRef>,
    },
    /// Answer to `start`: the alert exists (new or resumed) and this is what is already durable.
    Started {
        /// Server id of the alert.
        alert_id: String,
        /// Echo of the client id.
        client_id: String,
        /// False when this start resumed an existing alert.
        created: bool,
        /// Current status; a resumed alert may already have ended.
        status: AlertStatus,
        /// Link anyone can open to watch live.
        watch_url: String,
        /// What is durable so far; resend everything after it.
        acks: Acks,
    },
    /// Cumulative acknowledgement of durable data.
    Ack {
        /// Current acks.
        acks: Acks,
    },
    /// Answer to `ping`.
    Pong {
        /// Echo of the ping's `t`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t: Option<i64>,
        /// Server time, ms since the epoch.
        server_ms: i64,
    },
    /// Who was texted and how far each text got (sent on start and whenever it changes), so the
    /// person in danger sees "3 contacts notified, 2 opened the link".
    Deliveries {
        /// One entry per contact texted about this alert.
        deliveries: Vec<Delivery>,
    },
    /// A check-in timer reached its deadline: check in (with the PIN) before `fires_at_ms` or
    /// contacts are alerted.
    CheckInDue {
        /// The timer.
        timer_id: String,
        /// Server time the alert will be raised, ms since the epoch.
        fires_at_ms: i64,
    },
    /// Who is with the person now: sent after `started` and whenever it changes, so the page
    /// can say "2 watching, responder on it".
    Audience {
        /// Open watch pages and console views of this alert.
        watching: usize,
        /// The responder who claimed the alert, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claimed_by: Option<String>,
    },
    /// The alert ended (answer to `stop`, or ended by a responder).
    Stopped {
        /// Final status.
        status: AlertStatus,
    },
    /// A message was refused; the socket stays open unless a close follows.
    Error {
        /// Machine-readable code (see docs/protocol.md).
        code: String,
        /// Human-readable detail.
        detail: String,
        /// For `audio_gap`: the audio seq the server expects next.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<u64>,
    },
}

/// Reference to a still-active alert, sent in `welcome`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlertRef {
    /// Server id.
    pub alert_id: String,
    /// The client id that created it (send it in `start` to resume).
    pub client_id: String,
}

/// Limits advertised in `welcome`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest message in bytes.
    pub max_message_bytes: usize,
    /// Most fixes in one `fix` message.
    pub max_fixes_per_message: usize,
    /// Send something (a ping at least) this often, in ms.
    pub heartbeat_ms: u64,
}

/// Most fixes in one `fix` message.
pub const MAX_FIXES_PER_MESSAGE: usize = 100;

/// Most contacts per person: enough for family and friends, few enough that one SOS cannot be
/// turned into a bulk-texting tool.
pub const MAX_CONTACTS: usize = 10;

/// Longest name of a person (characters, after trimming).
pub const MAX_NAME_CHARS: usize = 100;

/// Summary of an alert as watchers and responders see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// Server id.
    pub id: String,
    /// Name of the person in danger.
    pub user_name: String,
    /// Status.
    pub status: AlertStatus,
    /// Server time the alert was created, ms since the epoch.
    pub started_ms: i64,
    /// Server time it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// Responder on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    /// Audio MIME type, when the phone sends audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_mime: Option<String>,
    /// What raised it: `sos` (the button), `timer` (a missed check-in).
    #[serde(default = "default_source")]
    pub source: String,
    /// Context in English, e.g. "missed a check-in: walking home" (for logs and tools; pages
    /// word [`AlertInfo::reason`] in the reader's language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the server raised it, when it was not the SOS button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Raised by the duress PIN: the person may be forced to cancel. Never shown on the phone.
    #[serde(default)]
    pub duress: bool,
}

/// Why the server raised an alert, as data: each reader's page puts it in their language, with
/// the person's own words (a timer's note, a zone's name) as they wrote them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// A check-in timer ran out.
    MissedCheckIn {
        /// What the person wrote on the timer ("walking home").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Where they were going.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        destination: Option<String>,
    },
    /// A check-in was made with the duress PIN.
    DuressCheckIn {
        /// What the person wrote on the timer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The person left a safe zone.
    LeftSafeZone {
        /// The zone's name.
        zone: String,
    },
    /// The person entered a danger zone.
    EnteredDangerZone {
        /// The zone's name.
        zone: String,
    },
    /// The duress PIN was used to erase the account (nothing was erased).
    DuressErase,
    /// A reason a newer server gives that this build does not know: pages say nothing rather
    /// than guess (sent on as `{"kind":"other"}`).
    #[serde(other)]
    Other,
}

impl std::fmt::Display for Reason {
    /// In English, for logs, the API's `note` and the CLI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::MissedCheckIn { note: Some(n), destination: Some(d) } => {
                write!(f, "missed a check-in: {n}, to {d}")
            }
            Reason::MissedCheckIn { note: Some(n), destination: None } => write!(f, "missed a check-in: {n}"),
            Reason::MissedCheckIn { note: None, destination: Some(d) } => {
                write!(f, "missed a check-in, on the way to {d}")
            }
            Reason::MissedCheckIn { note: None, destination: None } => f.write_str("missed a check-in"),
            Reason::DuressCheckIn { note: Some(n) } => write!(f, "possible duress — {n}"),
            Reason::DuressCheckIn { note: None } => f.write_str("possible duress"),
            Reason::LeftSafeZone { zone } => write!(f, "left the safe zone \"{zone}\""),
            Reason::EnteredDangerZone { zone } => write!(f, "entered the danger zone \"{zone}\""),
            Reason::DuressErase => f.write_str("possible duress: made to erase their account"),
            Reason::Other => f.write_str("raised automatically"),
        }
    }
}

fn default_source() -> String {
    "sos".into()
}

/// The phone's link health as watchers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhoneLink {
    /// True while the phone has a live socket and was heard from recently.
    pub connected: bool,
    /// Server time the phone was last heard from, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
}

/// Audio state in a snapshot; binary frames with the init segment and recent units follow it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioSnapshot {
    /// Stored part the following frames belong to.
    pub part: u16,
    /// MIME type of that part.
    pub mime: String,
    /// Index (within the part) of the first unit that follows; 0 means from the very start.
    pub first_unit: u64,
    /// How many unit frames follow.
    pub units: u64,
}

/// Messages the server sends as JSON text frames on `/v1/watch` (audio goes in binary frames).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchMsg {
    /// Everything needed to draw the alert from scratch.
    Snapshot {
        /// Identifies this server's live copy of the alert; resume only within the same epoch.
        epoch: String,
        /// Last event number included in this snapshot.
        ev: u64,
        /// True when sent because the client could not be resumed (it missed events).
        resync: bool,
        /// The alert.
        alert: AlertInfo,
        /// Phone link health.
        phone: PhoneLink,
        /// All fixes so far, ordered by device time.
        trail: Vec<Fix>,
        /// Audio state, when the alert has audio.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<AudioSnapshot>,
        /// Who was texted, and how far each text got.
        #[serde(default)]
        deliveries: Vec<Delivery>,
    },
    /// Sent instead of a snapshot when a reconnecting watcher can be resumed: the missed events follow.
    Resumed {
        /// Epoch (unchanged).
        epoch: String,
        /// The first replayed event is `from_ev`.
        from_ev: u64,
    },
    /// A new fix (may be older than the newest: order the trail by `time_ms`).
    Fix {
        /// Event number.
        ev: u64,
        /// The fix.
        fix: Fix,
    },
    /// The alert changed (status, claim).
    Alert {
        /// Event number.
        ev: u64,
        /// The alert now.
        alert: AlertInfo,
    },
    /// Phone link health changed.
    Phone {
        /// Event number.
        ev: u64,
        /// Link now.
        phone: PhoneLink,
    },
    /// Delivery state of the contacts' texts changed.
    Deliveries {
        /// Event number.
        ev: u64,
        /// Every contact texted about this alert.
        deliveries: Vec<Delivery>,
    },
    /// A new audio part starts (the phone restarted its recorder); its init frame follows.
    AudioPart {
        /// Event number.
        ev: u64,
        /// Part number.
        part: u16,
        /// MIME type.
        mime: String,
    },
}

/// Messages the server sends on `/v1/responder`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponderMsg {
    /// All active alerts (first message, and again after a resync).
    Overview {
        /// The responder's display name.
        responder: String,
        /// Active alerts, oldest first.
        alerts: Vec<AlertSummary>,
    },
    /// An alert appeared or changed.
    Update {
        /// The alert now.
        alert: AlertSummary,
    },
    /// A command was carried out. Every command gets this or `error`.
    Done {
        /// `claim`, `note`, `resolve` or `ping`.
        command: String,
        /// The alert it was about (none for `ping`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alert_id: Option<String>,
    },
    /// A command failed.
    Error {
        /// Machine-readable code.
        code: String,
        /// Detail.
        detail: String,
    },
}

/// What the responder console lists per alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertSummary {
    /// The alert.
    pub alert: AlertInfo,
    /// Newest fix by device time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fix: Option<Fix>,
    /// Phone link health.
    pub phone: PhoneLink,
    /// Contacts texted and their delivery state.
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
    /// Responders' notes, oldest first (responders only; contacts never see them).
    #[serde(default)]
    pub notes: Vec<Note>,
}

/// A responder's note on an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// Responder name.
    pub by: String,
    /// The note.
    pub text: String,
    /// Server time, ms since the epoch.
    pub at_ms: i64,
}

/// One emergency contact's alert text, as the person, watchers and responders see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Contact name.
    pub contact: String,
    /// Phone number with all but the last 4 digits hidden.
    pub phone: String,
    /// `pending`, `sending`, `queued`, `sent`, `delivered`, `undelivered`, `failed` or `opted_out`.
    pub status: String,
    /// True once the contact opened their watch link.
    pub opened: bool,
    /// The contact's id (absent for a contact removed since), to withdraw their link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// True once the contact's link for this alert was withdrawn.
    #[serde(default)]
    pub revoked: bool,
}

/// `POST /v1/auth/code`: send a verification code to this number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeRequest {
    /// Phone number in international form.
    pub phone: String,
    /// Language of the code text (`en`, `ru`); default `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `POST /v1/auth/verify`: exchange a code for a device token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// Phone number the code was sent to.
    pub phone: String,
    /// The 6-digit code.
    pub code: String,
    /// Display name (used when the number registers for the first time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Label of this device, e.g. "Pixel 8".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_label: Option<String>,
    /// The person's language (`en`, `ru`; e.g. the phone's), for their contacts' texts; used
    /// when the number registers for the first time. Default `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Answer to a successful verification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// The user.
    pub user_id: String,
    /// The new device.
    pub device_id: String,
    /// Bearer token of the new device (shown once).
    pub device_token: String,
}

/// A registered device, as listed by `GET /v1/devices`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Revoked, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// True for the device making the request.
    pub current: bool,
}

/// Body of `POST /v1/contacts` and `PUT /v1/contacts/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactInput {
    /// Name.
    pub name: String,
    /// Phone number in international form.
    pub phone: String,
    /// Order in which contacts are listed (and texted); default: last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i32>,
    /// Language of their texts (`en`, `ru`); default: the person's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// An emergency contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Contact id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Phone number, E.164.
    pub phone: String,
    /// Order.
    pub position: i32,
    /// True when the contact replied STOP: they get no texts.
    pub opted_out: bool,
    /// Language of their texts, when not the person's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Commands a responder sends on `/v1/responder`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponderCmd {
    /// Take the alert: everyone sees who is on it.
    Claim {
        /// Alert id.
        alert_id: String,
    },
    /// Add a note for the other responders (at most 1,000 characters).
    Note {
        /// Alert id.
        alert_id: String,
        /// The note.
        text: String,
    },
    /// End the alert as resolved.
    Resolve {
        /// Alert id.
        alert_id: String,
    },
    /// Keep-alive.
    Ping,
}

/// JSON body of every HTTP error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub error: String,
    /// Human-readable detail.
    pub detail: String,
}

/// One stored audio part, as listed by `GET /v1/alerts/{id}/recording`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingPart {
    /// Part number (0, 1, …).
    pub part: u16,
    /// MIME type of its bytes.
    pub mime: String,
    /// Stored (acknowledged) length in bytes.
    pub bytes: u64,
    /// Relative URL to download it (supports Range).
    pub url: String,
    /// `audio` or `video`.
    #[serde(default = "audio_track")]
    pub track: String,
    /// An upload from the phone wrote into it (a file sent after the fact, or the rest of a
    /// streamed recording).
    #[serde(default)]
    pub uploaded: bool,
}

fn audio_track() -> String {
    "audio".to_owned()
}

/// Where the person is, to tell an emergency operator and to go there
/// (`GET /v1/alerts/{id}/place`): the newest stored fix, its Plus Code and, where the server has
/// a geocoder, the address near it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Place {
    /// Latitude of the newest fix, degrees.
    pub lat: f64,
    /// Longitude of the newest fix, degrees.
    pub lon: f64,
    /// Its accuracy radius, metres.
    pub accuracy_m: f64,
    /// When it was taken (device clock), ms since the epoch.
    pub time_ms: i64,
    /// Its Open Location Code (Plus Code), 11 characters (~3 m).
    pub plus_code: String,
    /// The address near it, in the language asked for; absent without a geocoder or where it
    /// knows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What `POST /v1/alerts/{id}/recording` answers once a whole file is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingUploaded {
    /// The stored part the file is (or completed).
    pub part: u16,
    /// Relative URL to download that part.
    pub url: String,
    /// Bytes of the file received.
    pub received: u64,
    /// Bytes stored as new: fewer than `received` when the part already held the file's first
    /// bytes (the phone streamed them), so nothing is stored twice.
    pub stored: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_messages_round_trip_as_documented() {
        let m: PhoneMsg = serde_json::from_str(
            r#"{"type":"fix","fixes":[{"seq":1,"lat":52.5,"lon":13.4,"accuracy_m":5,"time_ms":1}]}"#,
        )
        .unwrap();
        let PhoneMsg::Fix { fixes } = &m else { panic!("{m:?}") };
        assert_eq!(fixes[0].seq, 1);
        assert!(fixes[0].validate().is_ok());
        let back = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<PhoneMsg>(&back).unwrap(), m);
    }

    #[test]
    fn reasons_read_as_documented_and_unknown_kinds_do_not_break_the_alert() {
        let r: Reason = serde_json::from_str(
            r#"{"kind":"missed_check_in","note":"walking home","destination":"Kreuzberg"}"#,
        )
        .unwrap();
        assert_eq!(r.to_string(), "missed a check-in: walking home, to Kreuzberg");
        let r: Reason = serde_json::from_str(r#"{"kind":"left_safe_zone","zone":"Home"}"#).unwrap();
        assert_eq!(r, Reason::LeftSafeZone { zone: "Home".into() });
        assert_eq!(serde_json::to_string(&Reason::DuressErase).unwrap(), r#"{"kind":"duress_erase"}"#);
        let a: AlertInfo = serde_json::from_str(
            r#"{"id":"a","user_name":"Ana","status":"active","started_ms":1,"reason":{"kind":"from_the_future","x":1}}"#,
        )
        .unwrap();
        assert_eq!(a.reason, Some(Reason::Other));
    }

    #[test]
    fn fix_validation_names_the_field() {
        let mut f = Fix {
            seq: 1,
            lat: 91.0,
            lon: 0.0,
            accuracy_m: 1.0,
            time_ms: 0,
            battery_pct: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
        };
        assert!(f.validate().unwrap_err().contains("lat"));
        f.lat = 0.0;
        f.accuracy_m = f64::NAN;
        assert!(f.validate().unwrap_err().contains("accuracy"));
        f.accuracy_m = 3.0;
        f.seq = 0;
        assert!(f.validate().is_err());
    }
}

/// `POST /v1/timers`: start a check-in timer ("walking home, 25 min").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimerStart {
    /// Seconds until the deadline (60 s to 24 h).
    pub duration_s: u64,
    /// What the person is doing, shown to contacts if the timer fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where they are going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Seconds between the "check in now" prompt and the alert (0 to 600; default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<u64>,
}

/// A check-in timer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    /// Timer id.
    pub id: String,
    /// `active`, `grace` (prompted), `checked_in`, `cancelled` or `fired`.
    pub status: String,
    /// Server time of the deadline (or, in grace, of the alert), ms since the epoch.
    pub deadline_ms: i64,
    /// Grace seconds after the deadline.
    pub grace_s: u64,
    /// Note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// Body of check-in and cancel: the PIN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinBody {
    /// The person's PIN (or, under duress, their duress PIN: the answer looks the same).
    pub pin: String,
}

/// `PUT /v1/pin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinSetup {
    /// 4 to 8 digits.
    pub pin: String,
    /// A different 4 to 8 digits that cancels visibly but raises a silent alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duress_pin: Option<String>,
}

/// A geozone as the API shows it (`/v1/geozones`): crossing out of a safe zone or into a danger
/// zone raises an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// Zone id (absent when creating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name, e.g. "Home".
    pub name: String,
    /// `safe` or `danger`.
    pub kind: String,
    /// GeoJSON geometry: Point (with `radius_m`) or Polygon.
    pub geometry: serde_json::Value,
    /// Radius of a Point zone, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius_m: Option<f64>,
    /// Whether the person is inside now (unknown until a clear fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside: Option<bool>,
}

/// Settings the dashboard needs (`GET /v1/config`), configured in one place on the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Map tile URL template, `{z}/{x}/{y}`; empty for none.
    #[serde(default)]
    pub tile_url: String,
    /// Attribution the tile provider requires (shown only while tiles show).
    #[serde(default)]
    pub tile_attribution: String,
    /// Server version.
    #[serde(default)]
    pub version: String,
}

/// `GET /healthz`: the database answers; how many alerts are live here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` (an unhealthy server answers 500).
    pub status: String,
    /// Live alerts on this server (in a cluster: those this node owns).
    pub live_alerts: usize,
    /// This server's node id.
    #[serde(default)]
    pub node: String,
    /// True in cluster mode.
    #[serde(default)]
    pub cluster: bool,
}

/// A one-word answer: `{"status": "code_sent"}`, `{"status": "cancelled"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    /// What happened.
    pub status: String,
}

/// `POST /v1/timers/{id}/extend`: push the deadline back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerExtend {
    /// Seconds added to the deadline (counted from now once the timer is in its grace period).
    pub duration_s: u64,
}
