//! SeaORM entities, one module per table (schema: `migrations/`).
#![allow(missing_docs)] // Columns mirror the migration, which documents them.

/// People who can raise an alert.
pub mod users {
    use sea_orm::entity::prelude::*;

    /// A user row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub phone: String,
        pub created_at: i64,
        /// Language of texts to this person's contacts unless a contact has their own.
        pub language: String,
        /// Erased by the person while an alert of theirs was on hold (the row waits for it).
        pub erased_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A user's phones; each holds a device token (stored hashed).
pub mod devices {
    use sea_orm::entity::prelude::*;

    /// A device row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "devices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub label: String,
        pub token_hash: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Responders who watch the console.
pub mod responders {
    use sea_orm::entity::prelude::*;

    /// A responder row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "responders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub token_hash: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// SOS alerts.
pub mod alerts {
    use sea_orm::entity::prelude::*;

    /// An alert row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub device_id: String,
        pub client_id: String,
        pub status: String,
        pub audio_mime: Option<String>,
        pub started_at: i64,
        pub ended_at: Option<i64>,
        pub claimed_by: Option<String>,
        /// `sos` (or NULL), `timer`.
        pub source: Option<String>,
        /// Context in English, e.g. the check-in timer's note.
        pub note: Option<String>,
        /// Why the server raised it, as [`alertme_protocol::Reason`] in JSON.
        pub reason: Option<String>,
        /// Raised by a duress PIN.
        pub duress: Option<bool>,
        /// When contacts were told the phone went silent (at most once).
        pub silent_texted_at: Option<i64>,
        /// Legal hold: why, by which responder, since when (retention and erasure skip it).
        pub hold_reason: Option<String>,
        pub hold_by: Option<String>,
        pub hold_at: Option<i64>,
        /// When retention removed its fixes and media.
        pub purged_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl Model {
        /// The stored reason: `None` for an SOS and for alerts raised before reasons were
        /// stored (their pages show the English `note`; a text still queued for one says
        /// plainly that they need help); a kind this build does not know reads as `Other`.
        pub fn parsed_reason(&self) -> Option<alertme_protocol::Reason> {
            self.reason.as_deref().and_then(|r| serde_json::from_str(r).ok())
        }
    }
}

/// Capability tokens that let one holder watch one alert.
pub mod watch_tokens {
    use sea_orm::entity::prelude::*;

    /// A watch token row (only the hash is kept).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "watch_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub alert_id: String,
        pub label: String,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
        pub first_opened_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Position fixes, one row per (alert, seq).
pub mod fixes {
    use sea_orm::entity::prelude::*;

    /// A fix row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "fixes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub alert_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub lat: f64,
        pub lon: f64,
        pub accuracy_m: f64,
        pub device_time: i64,
        pub battery_pct: Option<i16>,
        pub speed_mps: Option<f64>,
        pub heading_deg: Option<f64>,
        pub altitude_m: Option<f64>,
        pub received_at: i64,
        /// Place in the alert's evidence chain (null before the chain existed).
        pub chain_n: Option<i64>,
        /// Chain hash after this fix, hex.
        pub chain_hash: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Stored audio parts: one per recorder run (a playable file once its chunks are joined).
pub mod audio_parts {
    use sea_orm::entity::prelude::*;

    /// An audio part row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audio_parts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub alert_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub part: i32,
        pub mime: String,
        pub first_seq: i64,
        pub created_at: i64,
        /// When an upload first wrote into this part (the phone's stream then no longer
        /// continues it).
        pub uploaded_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Recording uploads (tus or plain): where each stands.
pub mod uploads {
    use sea_orm::entity::prelude::*;

    /// An upload row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "uploads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub alert_id: String,
        pub device_id: String,
        /// Declared total length (null: a plain upload of unknown length).
        pub length: Option<i64>,
        /// Bytes received and committed.
        pub offset: i64,
        /// A video recording (else audio).
        pub video: bool,
        /// The MIME type the client declared, canonical.
        pub declared_mime: Option<String>,
        /// The stored part its bytes go to, once the first bytes came.
        pub part: Option<i32>,
        pub created_at: i64,
        pub completed_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Audio chunks as received: their bytes, where they sit in their part, and their hash.
pub mod audio_chunks {
    use sea_orm::entity::prelude::*;

    /// An audio chunk row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audio_chunks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub alert_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub part: i32,
        pub offset: i64,
        pub len: i32,
        pub sha256: String,
        pub received_at: i64,
        /// The chunk's bytes (null only for chunks stored before they were kept here and not
        /// yet imported from their part file).
        pub data: Option<Vec<u8>>,
        /// Place in the alert's evidence chain (null before the chain existed).
        pub chain_n: Option<i64>,
        /// Chain hash after this chunk, hex.
        pub chain_hash: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The alert's timeline: triggered, claimed, resolved, …
pub mod alert_events {
    use sea_orm::entity::prelude::*;

    /// An event row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alert_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub alert_id: String,
        pub kind: String,
        pub actor: Option<String>,
        pub at: i64,
        pub detail: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A user's emergency contacts.
pub mod contacts {
    use sea_orm::entity::prelude::*;

    /// A contact row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub name: String,
        pub phone: String,
        pub position: i32,
        pub opted_out_at: Option<i64>,
        pub created_at: i64,
        /// Language of this contact's texts; `None`: the person's.
        pub language: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every text we send, from queued to its final delivery state.
pub mod sms_outbox {
    use sea_orm::entity::prelude::*;

    /// An outbox row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sms_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub kind: String,
        pub alert_id: Option<String>,
        pub contact_id: Option<String>,
        pub to_phone: String,
        pub body: Option<String>,
        pub status: String,
        pub attempts: i32,
        pub in_doubt: bool,
        pub next_attempt_at: i64,
        pub attempt_started_at: Option<i64>,
        pub provider_sid: Option<String>,
        pub error_code: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
        /// The person the text is sent for (their budget); none for sign-in codes.
        pub user_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fixes a phone sent that were refused (invalid values): their seqs are consumed, so the
/// cumulative ack moves past them and survives a restart.
pub mod refused_fixes {
    use sea_orm::entity::prelude::*;

    /// A refused fix.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "refused_fixes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub alert_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub reason: String,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Pending phone-number verification codes (hashed), one per number.
pub mod verifications {
    use sea_orm::entity::prelude::*;

    /// A verification row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "verifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub phone: String,
        pub code_hash: String,
        pub expires_at: i64,
        pub tries: i32,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Check-in timers: an alert is raised unless the person checks in before the deadline.
pub mod timers {
    use sea_orm::entity::prelude::*;

    /// A timer row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "timers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub device_id: String,
        pub note: Option<String>,
        pub destination: Option<String>,
        pub deadline_at: i64,
        pub grace_ms: i64,
        pub status: String,
        pub alert_id: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Hashed PINs (and duress PINs) that guard check-in and cancel.
pub mod user_pins {
    use sea_orm::entity::prelude::*;

    /// A PIN row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_pins")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub pin_hash: String,
        pub duress_pin_hash: Option<String>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The last position each person's phone reported (tracking or SOS).
pub mod user_positions {
    use sea_orm::entity::prelude::*;

    /// A position row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_positions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub lat: f64,
        pub lon: f64,
        pub accuracy_m: f64,
        pub time_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Geozones and their persisted inside/outside state.
pub mod geozones {
    use sea_orm::entity::prelude::*;

    /// A geozone row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "geozones")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub name: String,
        /// `safe` (alert on leaving) or `danger` (alert on entering).
        pub kind: String,
        /// GeoJSON geometry: a Point (with `radius_m`) or a Polygon.
        pub geometry: String,
        pub radius_m: Option<f64>,
        /// Confirmed state; NULL until a clear first fix.
        pub inside: Option<bool>,
        /// State a crossing is pending towards.
        pub candidate: Option<bool>,
        pub candidate_count: i32,
        pub candidate_since: Option<i64>,
        pub last_fix_time: Option<i64>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Cluster mode: the node that owns each live alert, and its fencing number.
pub mod alert_owners {
    use sea_orm::entity::prelude::*;

    /// An ownership row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alert_owners")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub alert_id: String,
        pub node_id: String,
        /// Grows by one with every change of owner; a writer holding an older one cannot commit.
        pub fence: i64,
        /// The owner renews this while it is alive; an old one means the owner is gone.
        pub renewed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Signed chain heads: at the end of an alert and at each export.
pub mod evidence_seals {
    use sea_orm::entity::prelude::*;

    /// A seal row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "evidence_seals")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub alert_id: String,
        /// Chain items (after the start record) the head covers.
        pub items: i64,
        /// Chain head, hex.
        pub head: String,
        pub signed_at: i64,
        /// "ended" or "export".
        pub reason: String,
        /// Ed25519 public key, base64.
        pub public_key: String,
        /// Ed25519 signature of `chain::seal_message`, base64.
        pub signature: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Chain of custody: who opened, downloaded or exported an alert's evidence, and when.
pub mod custody {
    use sea_orm::entity::prelude::*;

    /// A custody row.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "custody")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub alert_id: String,
        pub at: i64,
        /// watch_opened, watch_closed, recording_downloaded, evidence_exported, hold_set, hold_lifted.
        pub action: String,
        /// "contact:NAME", "responder:NAME", "device", "operator" (the CLI).
        pub who: String,
        /// Keyed hash of the client's address (never the address).
        pub addr_hash: Option<String>,
        pub detail: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Numbers whose owners asked to be forgotten (keyed hash): never added or texted again.
pub mod forgotten_numbers {
    use sea_orm::entity::prelude::*;

    /// A forgotten number.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "forgotten_numbers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub phone_hash: String,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
