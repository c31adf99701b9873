//! What the page has not yet seen acknowledged, kept in IndexedDB so that a dropped network, a
//! crashed tab or a reload loses nothing (docs/protocol.md, "Resume rules").

use alertme_protocol::{Acks, Fix};
use idb::{Database, DatabaseEvent, Factory, KeyRange, ObjectStoreParams, TransactionMode};
use js_sys::Uint8Array;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

const DB_NAME: &str = "alertme-sos";
const META: &str = "meta";
const FIXES: &str = "fixes";
const AUDIO: &str = "audio";
const SOS_KEY: &str = "sos";

/// The SOS this browser is running, as much of it as must outlive the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveSos {
    /// Chosen when the button was pressed; makes every `start` of this SOS the same alert.
    pub client_id: String,
    /// When the button was pressed (browser clock).
    pub pressed_at_ms: i64,
    /// The recorder format announced in `start`.
    pub audio_mime: Option<String>,
    /// Next fix seq to hand out.
    pub next_fix: u64,
    /// Next audio chunk seq to hand out.
    pub next_audio: u64,
    /// Known once the server answered `started`.
    pub alert_id: Option<String>,
    /// Link to share.
    pub watch_url: Option<String>,
    /// Cancelled on this page: the page looks idle; the server decides whether it really ended
    /// (the PIN) or goes on silently (the duress PIN).
    #[serde(default)]
    pub hidden: bool,
    /// Where the recorder's format changed (first chunk seq, MIME type): resent chunks keep
    /// theirs after a reload.
    #[serde(default)]
    pub formats: Vec<(u64, String)>,
}

/// Why storage failed (private mode, quota, a browser without IndexedDB).
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl From<idb::Error> for StoreError {
    fn from(e: idb::Error) -> Self {
        Self(e.to_string())
    }
}

/// Handle on the page's IndexedDB database.
#[derive(Clone)]
pub struct Outbox {
    db: std::rc::Rc<Database>,
}

/// Everything stored for an SOS that was running when the page went away.
pub struct Saved {
    pub sos: ActiveSos,
    pub fixes: Vec<Fix>,
    pub audio: Vec<(u64, Vec<u8>)>,
}

fn key(seq: u64) -> JsValue {
    JsValue::from_f64(seq as f64)
}

impl Outbox {
    /// Opens (and on first use creates) the database.
    pub async fn open() -> Result<Self, StoreError> {
        let factory = Factory::new()?;
        let mut req = factory.open(DB_NAME, Some(1))?;
        req.on_upgrade_needed(|event| {
            let Ok(db) = event.database() else { return };
            for name in [META, FIXES, AUDIO] {
                if !db.store_names().iter().any(|n| n == name) {
                    let _ = db.create_object_store(name, ObjectStoreParams::new());
                }
            }
        });
        Ok(Self { db: std::rc::Rc::new(req.await?) })
    }

    /// The SOS in progress with its unacknowledged data, if the page was left during one.
    pub async fn load(&self) -> Result<Option<Saved>, StoreError> {
        let tx = self.db.transaction(&[META, FIXES, AUDIO], TransactionMode::ReadOnly)?;
        let meta = tx.object_store(META)?.get(JsValue::from_str(SOS_KEY))?.await?;
        let Some(sos) =
            meta.and_then(|v| v.as_string()).and_then(|s| serde_json::from_str::<ActiveSos>(&s).ok())
        else {
            return Ok(None);
        };
        let fixes = tx
            .object_store(FIXES)?
            .get_all(None, None)?
            .await?
            .into_iter()
            .filter_map(|v| v.as_string().and_then(|s| serde_json::from_str::<Fix>(&s).ok()))
            .collect();
        let audio_store = tx.object_store(AUDIO)?;
        let keys = audio_store.get_all_keys(None, None)?.await?;
        let values = audio_store.get_all(None, None)?.await?;
        let audio = keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k.as_f64()? as u64, Uint8Array::new(&v).to_vec())))
            .collect();
        tx.await?;
        Ok(Some(Saved { sos, fixes, audio }))
    }

    /// Stores the SOS record alone (start, `started`).
    pub async fn save(&self, sos: &ActiveSos) -> Result<(), StoreError> {
        let tx = self.db.transaction(&[META], TransactionMode::ReadWrite)?;
        put_meta(&tx, sos)?;
        committed(tx).await
    }

    /// Stores a fix together with the seq counter that handed it out.
    pub async fn add_fix(&self, sos: &ActiveSos, fix: &Fix) -> Result<(), StoreError> {
        let tx = self.db.transaction(&[META, FIXES], TransactionMode::ReadWrite)?;
        put_meta(&tx, sos)?;
        let json = serde_json::to_string(fix).map_err(|e| StoreError(e.to_string()))?;
        tx.object_store(FIXES)?.put(&JsValue::from_str(&json), Some(&key(fix.seq)))?;
        committed(tx).await
    }

    /// Stores an audio chunk together with the seq counter that handed it out.
    pub async fn add_audio(&self, sos: &ActiveSos, pieces: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        // One transaction for all pieces of a recorder chunk (video comes in 1 KB pieces).
        let tx = self.db.transaction(&[META, AUDIO], TransactionMode::ReadWrite)?;
        put_meta(&tx, sos)?;
        let store = tx.object_store(AUDIO)?;
        for (seq, bytes) in pieces {
            store.put(&Uint8Array::from(&bytes[..]).into(), Some(&key(*seq)))?;
        }
        committed(tx).await
    }

    /// Forgets what the server acknowledged.
    pub async fn drop_acked(&self, acks: Acks) -> Result<(), StoreError> {
        let tx = self.db.transaction(&[FIXES, AUDIO], TransactionMode::ReadWrite)?;
        for (store, upto) in [(FIXES, acks.fix), (AUDIO, acks.audio)] {
            if upto > 0 {
                let range = KeyRange::upper_bound(&key(upto), Some(false))?;
                tx.object_store(store)?.delete(range)?;
            }
        }
        committed(tx).await
    }

    /// Forgets the SOS entirely (it ended).
    pub async fn clear(&self) -> Result<(), StoreError> {
        let tx = self.db.transaction(&[META, FIXES, AUDIO], TransactionMode::ReadWrite)?;
        for store in [META, FIXES, AUDIO] {
            tx.object_store(store)?.clear()?;
        }
        committed(tx).await
    }
}

async fn committed(tx: idb::Transaction) -> Result<(), StoreError> {
    if tx.commit()?.await?.is_committed() {
        Ok(())
    } else {
        Err(StoreError("the browser aborted the write".into()))
    }
}

fn put_meta(tx: &idb::Transaction, sos: &ActiveSos) -> Result<(), StoreError> {
    let json = serde_json::to_string(sos).map_err(|e| StoreError(e.to_string()))?;
    tx.object_store(META)?.put(&JsValue::from_str(&json), Some(&JsValue::from_str(SOS_KEY)))?;
    Ok(())
}
