//! The evidence bundle: one zip with the recording as received, the trail, the event and custody
//! logs, the hash chain and a signed manifest, readable by a person and checkable offline.

use std::collections::HashMap;
use std::io::Write;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::custody::{self, Who};
use super::key::SealKey;
use crate::chain;
use crate::error::{Error, Result};
use crate::storage::entity::{
    alert_events, alerts, audio_chunks, audio_parts, contacts, custody as custody_rows, evidence_seals,
    fixes, responders, sms_outbox,
};
use crate::storage::evidence::{chunk_record, fix_record, start_record};
use alertme_protocol::AlertStatus;

/// Bundle format, in the manifest.
pub const FORMAT: &str = "alertme-evidence/1";

/// One line of `chain.jsonl`: item `n`'s canonical record `c` and the chain hash after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Line {
    /// Place in the chain (0: the start record).
    pub n: i64,
    /// `h_n`, hex.
    pub h: String,
    /// Canonical record, hashed as these exact bytes.
    pub c: String,
}

/// A signed chain head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Seal {
    /// Chain items it covers.
    pub items: i64,
    /// Chain head then, hex.
    pub head: String,
    /// When it was signed, ms.
    pub signed_at: i64,
    /// "ended" or "export".
    pub reason: String,
    /// Signing key, base64.
    pub public_key: String,
    /// Signature of `chain::seal_message`, base64.
    pub signature: String,
}

impl From<evidence_seals::Model> for Seal {
    fn from(s: evidence_seals::Model) -> Self {
        Self {
            items: s.items,
            head: s.head,
            signed_at: s.signed_at,
            reason: s.reason,
            public_key: s.public_key,
            signature: s.signature,
        }
    }
}

/// A file in the bundle and its fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path in the zip.
    pub name: String,
    /// Size, bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Alert id.
    pub alert: String,
    /// Its status at export.
    pub status: String,
    /// Started, ms since the epoch.
    pub started_at: i64,
    /// Ended, ms (if it had).
    pub ended_at: Option<i64>,
    /// When the bundle was made, ms.
    pub exported_at: i64,
    /// Who asked for it.
    pub exported_by: String,
    /// Chain items after the start record.
    pub chain_items: i64,
    /// Chain head at export, hex.
    pub chain_head: String,
    /// Fixes and media chunks stored before the chain existed (in the files, not in the chain).
    pub unchained_items: i64,
    /// Every seal of this alert so far, the export's own last.
    pub seals: Vec<Seal>,
    /// The key `manifest.sig` is made with, base64.
    pub public_key: String,
    /// Every other file.
    pub files: Vec<FileEntry>,
}

/// A finished bundle.
pub struct Bundle {
    /// The zip.
    pub bytes: Vec<u8>,
    /// A file name for it.
    pub file_name: String,
}

/// Signs an alert's chain head as it stands now; returns the seal.
pub async fn seal(db: &DatabaseConnection, key: &SealKey, alert_id: &str, reason: &str) -> Result<Seal> {
    let tip = crate::storage::evidence::tip(db, alert_id).await?;
    store_seal(db, key, alert_id, tip.n, &chain::hex(&tip.head), reason).await
}

async fn store_seal(
    db: &DatabaseConnection,
    key: &SealKey,
    alert_id: &str,
    items: i64,
    head: &str,
    reason: &str,
) -> Result<Seal> {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let signed_at = crate::now_ms();
    let signature = key.sign(chain::seal_message(alert_id, items, head, signed_at).as_bytes());
    let row = evidence_seals::ActiveModel {
        id: Default::default(),
        alert_id: Set(alert_id.to_owned()),
        items: Set(items),
        head: Set(head.to_owned()),
        signed_at: Set(signed_at),
        reason: Set(reason.to_owned()),
        public_key: Set(key.public()),
        signature: Set(signature),
    }
    .insert(db)
    .await?;
    Ok(Seal::from(row))
}

/// The chain as stored: every chained fix and chunk in order, re-derived from the rows (so a row
/// changed in the database no longer matches its stored hash, and verification says where).
/// `tip` was read before `fix_rows` (see [`export`]): items after it are left out.
async fn chain_lines(
    db: &DatabaseConnection,
    alert: &alerts::Model,
    fix_rows: &[fixes::Model],
    tip: i64,
) -> Result<(Vec<Line>, i64)> {
    let c0 = start_record(alert);
    let mut lines = vec![Line { n: 0, h: chain::hex(&chain::anchor(&c0)), c: c0 }];
    type ChunkMeta = (i64, i32, i64, i32, String, i64, Option<i64>, Option<String>);
    let chunk_rows: Vec<ChunkMeta> = audio_chunks::Entity::find()
        .select_only()
        .columns([
            audio_chunks::Column::Seq,
            audio_chunks::Column::Part,
            audio_chunks::Column::Offset,
            audio_chunks::Column::Len,
            audio_chunks::Column::Sha256,
            audio_chunks::Column::ReceivedAt,
            audio_chunks::Column::ChainN,
            audio_chunks::Column::ChainHash,
        ])
        .filter(audio_chunks::Column::AlertId.eq(&alert.id))
        .into_tuple()
        .all(db)
        .await?;
    let mut items: Vec<(i64, String, String)> = Vec::new();
    let mut unchained = 0;
    for f in fix_rows {
        match (f.chain_n, &f.chain_hash) {
            (Some(n), Some(h)) => items.push((n, h.clone(), fix_record(f))),
            _ => unchained += 1,
        }
    }
    for (seq, part, offset, len, sha256, received_at, n, h) in chunk_rows {
        let row = audio_chunks::Model {
            alert_id: alert.id.clone(),
            seq,
            part,
            offset,
            len,
            sha256,
            received_at,
            data: None,
            chain_n: n,
            chain_hash: h.clone(),
        };
        match (n, h) {
            (Some(n), Some(h)) => items.push((n, h, chunk_record(&row))),
            _ => unchained += 1,
        }
    }
    items.retain(|(n, _, _)| *n <= tip);
    items.sort_by_key(|(n, _, _)| *n);
    lines.extend(items.into_iter().map(|(n, h, c)| Line { n, h, c }));
    Ok((lines, unchained))
}

/// Exports from a running server: what its durable writer still holds (items received, custody
/// entries) is committed first, so the bundle has everything received before it was asked for.
/// (The command line's export runs beside the server, without a writer: [`export`].)
pub async fn export_now(
    core: &crate::domain::Core,
    alert_id: &str,
    who: &Who,
    addr: Option<String>,
) -> Result<Bundle> {
    core.store.flush().await;
    export(&core.db, &core.seal_key, alert_id, who, addr).await
}

/// Builds the evidence bundle of an alert for `who` (already allowed to have it) and records
/// the export in the custody log. The duress PIN's use is shown to responders only.
pub async fn export(
    db: &DatabaseConnection,
    key: &SealKey,
    alert_id: &str,
    who: &Who,
    addr: Option<String>,
) -> Result<Bundle> {
    let alert = alerts::Entity::find_by_id(alert_id.to_owned()).one(db).await?.ok_or(Error::NotFound)?;
    // A duress alert looks cancelled to whoever forced the PIN: the person's side gets for it
    // exactly what it gets for an alert really cancelled with the PIN (and the duress PIN can
    // also cancel a live SOS, which then streams on, unseen).
    if !who.is_responder() && (alert.duress == Some(true) || alert.status == AlertStatus::Cancelled.as_str())
    {
        return Err(Error::Conflict(
            "an alert ended with the PIN is exported by a responder, not from the phone".into(),
        ));
    }
    if alert.purged_at.is_some() {
        return Err(Error::Conflict(
            "this alert's fixes and recordings were deleted by the retention policy".into(),
        ));
    }
    custody::record(db, alert_id, custody::action::EVIDENCE_EXPORTED, who, addr, None).await?;
    // Where the chain stands first: the rows are read in more than one query while the writer
    // may commit, and a batch commits all its items at once, in chain order; so everything up
    // to this tip is stored, and what came after it is left for the next export.
    let tip = crate::storage::evidence::tip(db, alert_id).await?.n;
    let mut trail = fixes::Entity::find().filter(fixes::Column::AlertId.eq(alert_id)).all(db).await?;
    let (lines, unchained) = chain_lines(db, &alert, &trail, tip).await?;
    let last = lines.last().expect("the start record");
    let mut seals: Vec<Seal> = evidence_seals::Entity::find()
        .filter(evidence_seals::Column::AlertId.eq(alert_id))
        .order_by_asc(evidence_seals::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Seal::from)
        .collect();
    seals.push(store_seal(db, key, alert_id, last.n, &last.h.clone(), "export").await?);

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let chain_text: String =
        lines.iter().map(|l| serde_json::to_string(l).expect("serializes") + "\n").collect();
    files.push(("chain.jsonl".into(), chain_text.into_bytes()));
    trail.sort_by_key(|f| (f.device_time, f.seq));
    files.push(("trail.gpx".into(), gpx(&alert, &trail).into_bytes()));
    files.push(("trail.geojson".into(), geojson(&trail).into_bytes()));
    let parts = audio_parts::Entity::find()
        .filter(audio_parts::Column::AlertId.eq(alert_id))
        .order_by_asc(audio_parts::Column::Part)
        .all(db)
        .await?;
    for p in &parts {
        let bytes =
            crate::storage::recordings::read_part(db, alert_id, p.part as u16, 0..i64::MAX as u64).await?;
        files.push((format!("recording/part-{}.{}", p.part, extension(&p.mime)), bytes));
    }
    let names = Names::load(db, &alert.user_id).await?;
    let events = events(db, &alert, who.is_responder(), &names).await?;
    files.push(("events.json".into(), serde_json::to_vec_pretty(&events).expect("serializes")));
    let custody = custody_log(db, alert_id, &names).await?;
    files.push(("custody.json".into(), serde_json::to_vec_pretty(&custody).expect("serializes")));
    files.push(("README.txt".into(), readme(&alert, &lines, unchained, &parts).into_bytes()));

    let manifest = Manifest {
        format: FORMAT.into(),
        alert: alert.id.clone(),
        status: alert.status.clone(),
        started_at: alert.started_at,
        ended_at: alert.ended_at,
        exported_at: crate::now_ms(),
        exported_by: names.who(&who.stored()),
        chain_items: last.n,
        chain_head: last.h.clone(),
        unchained_items: unchained,
        seals,
        public_key: key.public(),
        files: files
            .iter()
            .map(|(name, b)| FileEntry {
                name: name.clone(),
                bytes: b.len() as u64,
                sha256: hex::encode(Sha256::digest(b)),
            })
            .collect(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("serializes");
    let signature = key.sign(&manifest_bytes);
    files.push(("manifest.json".into(), manifest_bytes));
    files.push(("manifest.sig".into(), format!("{signature}\n").into_bytes()));
    let bytes = tokio::task::spawn_blocking(move || zip(files))
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("zip task: {e}")))??;
    Ok(Bundle { bytes, file_name: format!("alertme-evidence-{alert_id}.zip") })
}

fn zip(files: Vec<(String, Vec<u8>)>) -> Result<Vec<u8>> {
    use chrono::{Datelike, Timelike};
    use zip::write::SimpleFileOptions;
    // Files dated when the bundle was made (UTC), not the format's default of 1980.
    let t = chrono::Utc::now();
    let when = zip::DateTime::from_date_and_time(
        t.year() as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let failed = |e: &dyn std::fmt::Display| Error::Internal(anyhow::anyhow!("writing the zip: {e}"));
    for (name, bytes) in files {
        // Recordings are compressed already: stored as they are, byte for byte.
        let method = if name.starts_with("recording/") {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let options = SimpleFileOptions::default().compression_method(method).last_modified_time(when);
        w.start_file(name, options).map_err(|e| failed(&e))?;
        w.write_all(&bytes).map_err(|e| failed(&e))?;
    }
    Ok(w.finish().map_err(|e| failed(&e))?.into_inner())
}

fn extension(mime: &str) -> &'static str {
    if mime.starts_with("audio/aac") {
        "aac"
    } else if mime.contains("webm") {
        "webm"
    } else if mime.contains("ogg") {
        "ogg"
    } else if mime.contains("mp4") {
        "m4a"
    } else {
        "bin"
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn gpx(alert: &alerts::Model, trail: &[fixes::Model]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"AlertMe\" \
         xmlns=\"http://www.topografix.com/GPX/1/1\">\n<trk><name>AlertMe alert ",
    );
    s.push_str(&alert.id);
    s.push_str("</name><trkseg>\n");
    for f in trail {
        s.push_str(&format!("<trkpt lat=\"{}\" lon=\"{}\">", f.lat, f.lon));
        if let Some(e) = f.altitude_m {
            s.push_str(&format!("<ele>{e}</ele>"));
        }
        s.push_str(&format!(
            "<time>{}</time><hdop>{}</hdop><desc>fix {}, accuracy {} m, received {}</desc></trkpt>\n",
            rfc3339(f.device_time),
            f.accuracy_m / 5.0,
            f.seq,
            f.accuracy_m,
            rfc3339(f.received_at)
        ));
    }
    s.push_str("</trkseg></trk>\n</gpx>\n");
    s
}

fn geojson(trail: &[fixes::Model]) -> String {
    let features: Vec<serde_json::Value> = trail
        .iter()
        .map(|f| {
            serde_json::json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [f.lon, f.lat]},
                "properties": {
                    "seq": f.seq, "time": rfc3339(f.device_time), "accuracy_m": f.accuracy_m,
                    "battery_pct": f.battery_pct, "speed_mps": f.speed_mps, "heading_deg": f.heading_deg,
                    "altitude_m": f.altitude_m, "received": rfc3339(f.received_at),
                }
            })
        })
        .collect();
    let line: Vec<[f64; 2]> = trail.iter().map(|f| [f.lon, f.lat]).collect();
    let mut all = vec![serde_json::json!({
        "type": "Feature", "geometry": {"type": "LineString", "coordinates": line}, "properties": {"name": "trail"}
    })];
    all.extend(features);
    serde_json::to_string_pretty(&serde_json::json!({"type": "FeatureCollection", "features": all}))
        .expect("serializes")
}

/// Names of the people an alert's logs refer to by id.
struct Names {
    contacts: HashMap<String, String>,
    responders: HashMap<String, String>,
}

impl Names {
    /// The person's contacts and every responder.
    async fn load(db: &DatabaseConnection, user_id: &str) -> Result<Self> {
        let contacts = contacts::Entity::find()
            .filter(contacts::Column::UserId.eq(user_id))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        let responders =
            responders::Entity::find().all(db).await?.into_iter().map(|r| (r.id, r.name)).collect();
        Ok(Self { contacts, responders })
    }

    /// A stored `who` (custody) or event actor in words.
    fn who(&self, stored: &str) -> String {
        if let Some(label) = stored.strip_prefix("link:") {
            return match label.strip_prefix("contact:") {
                Some(id) => match self.contacts.get(id) {
                    Some(n) => format!("contact {n} (their watch link)"),
                    None => "a contact since removed (their watch link)".into(),
                },
                None => "the person's own watch link".into(),
            };
        }
        if let Some(id) = stored.strip_prefix("responder:") {
            return format!("responder {}", self.responders.get(id).map_or(id, String::as_str));
        }
        if stored.starts_with("device:") {
            return "the person's phone".into();
        }
        if stored == "operator" {
            return "the server's operator (command line)".into();
        }
        match self.responders.get(stored) {
            Some(n) => format!("responder {n}"),
            None => "the person's phone".into(),
        }
    }
}

#[derive(Serialize)]
struct Event {
    at: String,
    at_ms: i64,
    what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    who: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// The alert's timeline: its start, texts and their last known delivery state, claims, notes
/// and its end. Duress only for responders.
async fn events(
    db: &DatabaseConnection,
    alert: &alerts::Model,
    responder: bool,
    names: &Names,
) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    for e in alert_events::Entity::find()
        .filter(alert_events::Column::AlertId.eq(&alert.id))
        .order_by_asc(alert_events::Column::Id)
        .all(db)
        .await?
    {
        if e.kind == "duress" && !responder {
            continue;
        }
        let who = match e.kind.as_str() {
            "triggered" => None,
            _ => e.actor.as_deref().map(|a| names.who(a)),
        };
        let detail = match e.kind.as_str() {
            "triggered" => alert.note.clone().filter(|_| responder || !alert.duress.unwrap_or(false)),
            _ => e.detail.clone(),
        };
        out.push(Event { at: rfc3339(e.at), at_ms: e.at, what: e.kind, who, detail });
    }
    // Raised by the duress PIN itself (cancelling a timer): say so as plainly as a live SOS's
    // "duress" event does.
    if responder && alert.duress == Some(true) && !out.iter().any(|e| e.what == "duress") {
        out.push(Event {
            at: rfc3339(alert.started_at),
            at_ms: alert.started_at,
            what: "duress".into(),
            who: None,
            detail: Some("raised by the duress PIN: to whoever forced it, it looked cancelled".into()),
        });
    }
    for t in sms_outbox::Entity::find()
        .filter(sms_outbox::Column::AlertId.eq(&alert.id))
        .order_by_asc(sms_outbox::Column::Id)
        .all(db)
        .await?
    {
        if t.kind == crate::storage::outbox::kind::DURESS && !responder {
            continue;
        }
        let to = t.contact_id.as_deref().and_then(|c| names.contacts.get(c)).cloned().unwrap_or_default();
        out.push(Event {
            at: rfc3339(t.created_at),
            at_ms: t.created_at,
            what: format!("text_{}", t.kind),
            who: Some(format!("to {to} ({})", t.to_phone)),
            detail: Some(format!(
                "{}, last change {}{}",
                t.status,
                rfc3339(t.updated_at),
                t.error_code.map(|c| format!(", error {c}")).unwrap_or_default()
            )),
        });
    }
    out.sort_by_key(|e| e.at_ms);
    Ok(out)
}

#[derive(Serialize)]
struct CustodyEntry {
    at: String,
    at_ms: i64,
    action: String,
    who: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address_mark: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

async fn custody_log(db: &DatabaseConnection, alert_id: &str, names: &Names) -> Result<Vec<CustodyEntry>> {
    Ok(custody_rows::Entity::find()
        .filter(custody_rows::Column::AlertId.eq(alert_id))
        .order_by_asc(custody_rows::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|c| CustodyEntry {
            at: rfc3339(c.at),
            at_ms: c.at,
            action: c.action,
            who: names.who(&c.who),
            address_mark: c.addr_hash,
            detail: c.detail,
        })
        .collect())
}

fn readme(alert: &alerts::Model, lines: &[Line], unchained: i64, parts: &[audio_parts::Model]) -> String {
    let ended = alert.ended_at.map_or("not yet (exported while the alert was live)".to_owned(), rfc3339);
    let mut s = format!(
        "AlertMe evidence bundle\n=======================\n\n\
         Alert {id}, started {start}, ended {ended}, status: {status}.\n\n\
         What is in this folder\n\
         - recording/: the sound recorded by the person's phone, each part exactly as the phone sent it\n  \
           ({parts} part(s); play them with any media player, e.g. VLC).\n\
         - trail.gpx and trail.geojson: where the phone was, fix by fix (open them in a map program).\n\
         - events.json: what happened and when: the alert, the texts sent to contacts and how far each\n  \
           got, responders claiming and resolving it, notes.\n\
         - custody.json: everyone who opened the live view, downloaded the recording or exported this\n  \
           bundle, and when (addresses appear only as a one-way mark).\n\
         - chain.jsonl: every stored position and piece of recording in the order the server stored them,\n  \
           each linked to the one before by a SHA-256 hash ({items} items).\n\
         - manifest.json: the fingerprint (SHA-256) of every file here, the last link of the chain, and\n  \
           the server's signatures; manifest.sig: the server's signature of manifest.json.\n\n\
         How to check that nothing was changed\n\
         Run `alertme evidence verify THIS.zip --key PUBLIC_KEY`, with the server's public key from\n\
         https://<the server>/v1/evidence/key (or `alertme evidence key` on the server). It works offline\n\
         and answers \"valid\", or names the first file or item that does not match. A change of a single\n\
         byte in any file makes the check fail. docs/evidence.md explains the method in full.\n",
        id = alert.id,
        start = rfc3339(alert.started_at),
        status = alert.status,
        parts = parts.len(),
        items = lines.len() - 1,
    );
    if unchained > 0 {
        s.push_str(&format!(
            "\nNote: {unchained} item(s) were stored before this server kept a hash chain; they are in the\n\
             files (covered by the signed manifest) but not in chain.jsonl.\n"
        ));
    }
    s
}
