//! Alert lifecycle: start (idempotent), end, claim, and bringing stored alerts back live.

use std::sync::Arc;

use alertme_protocol::{AlertInfo, AlertStatus, Reason};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};

use crate::cluster::ClusterError;
use crate::domain::accounts::{self, Device};
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::live::{Owned, RestoredPart, Session, SessionSeed};
use crate::storage::entity::{alert_events, alerts, users, watch_tokens};
use crate::storage::recordings;
use crate::storage::writer::fix_from_row;

/// An alert as stored.
pub use crate::storage::entity::alerts::Model as Alert;

/// Label of the watch token handed to the phone itself (to share the link).
pub const DEVICE_WATCH_LABEL: &str = "device";

/// Active alerts one person may have started within [`NEW_ALERTS_WINDOW_MS`]: a real emergency
/// needs one; the cap keeps a looping or hostile client from opening hundreds in a second (each
/// holds memory and texts contacts). Older alerts left active (a lost phone's) never block a
/// new SOS.
pub const MAX_NEW_PER_PERSON: u64 = 5;
/// See [`MAX_NEW_PER_PERSON`].
const NEW_ALERTS_WINDOW_MS: i64 = 10 * 60_000;

/// Starts an alert, or returns the one this user already started with `client_id`.
/// Returns the live (or, if it already ended, a detached) session and whether it was created.
pub async fn start(
    state: &Core,
    device: &Device,
    client_id: &str,
    audio_mime: Option<&str>,
) -> Result<(Arc<Session>, alerts::Model, bool)> {
    if client_id.is_empty() || client_id.len() > 100 {
        return Err(Error::BadRequest("client_id must be 1 to 100 characters".into()));
    }
    if let Some(existing) = by_client_id(&state.db, &device.user_id, client_id).await? {
        return Ok((session_for(state, &existing).await?, existing, false));
    }
    let recent = alerts::Entity::find()
        .filter(alerts::Column::UserId.eq(device.user_id.clone()))
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        .filter(alerts::Column::StartedAt.gt(crate::now_ms() - NEW_ALERTS_WINDOW_MS))
        .count(&state.db)
        .await?;
    if recent >= MAX_NEW_PER_PERSON {
        return Err(Error::Conflict(format!(
            "{recent} alerts started in the last 10 minutes are still active: resume one of them (send start \
             with its client_id) or end one first"
        )));
    }
    let row = new_alert(Raise {
        source: Source::Sos,
        user_id: &device.user_id,
        device_id: &device.id,
        client_id,
        audio_mime,
        reason: None,
        duress: false,
    });
    let txn = crate::storage::write_txn(&state.db).await?;
    if let Err(e) = raise_in(state, &txn, &row, None).await {
        // Most likely a concurrent start with the same client id won the unique index.
        drop(txn);
        let existing = by_client_id(&state.db, &device.user_id, client_id)
            .await?
            .ok_or(Error::Internal(anyhow::anyhow!("alert insert failed: {e}")))?;
        return Ok((session_for(state, &existing).await?, existing, false));
    }
    txn.commit().await?;
    Ok((raised(state, &row).await?, row, true))
}

/// What raised an alert: one way in for all of them ([`new_alert`], [`raise_in`], [`raised`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The person pressed SOS (phone or `/sos` page).
    Sos,
    /// A check-in timer was missed, or ended with the duress PIN.
    Timer,
    /// The phone left a safe zone or entered a danger zone.
    Geozone,
}

impl Source {
    /// As stored (`None` for an SOS, which predates the column).
    fn stored(self) -> Option<&'static str> {
        match self {
            Source::Sos => None,
            Source::Timer => Some("timer"),
            Source::Geozone => Some("geozone"),
        }
    }
}

/// An alert to raise.
#[derive(Debug, Clone)]
pub struct Raise<'a> {
    /// What raised it.
    pub source: Source,
    /// Whose alert it is.
    pub user_id: &'a str,
    /// The device that raised it (or whose timer or zone did).
    pub device_id: &'a str,
    /// Idempotency key: the phone's client id, or the timer or zone event behind it.
    pub client_id: &'a str,
    /// The audio format the phone named.
    pub audio_mime: Option<&'a str>,
    /// Why, for server-raised alerts (a missed check-in, a zone crossed).
    pub reason: Option<Reason>,
    /// Raised by the duress PIN: looks ended to whoever forced it, live to everyone else.
    pub duress: bool,
}

/// The row of an alert about to be raised (not stored yet: [`raise_in`] stores it).
pub fn new_alert(r: Raise<'_>) -> Alert {
    alerts::Model {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: r.user_id.to_owned(),
        device_id: r.device_id.to_owned(),
        client_id: r.client_id.to_owned(),
        status: AlertStatus::Active.as_str().to_owned(),
        audio_mime: r.audio_mime.map(str::to_owned),
        started_at: crate::now_ms(),
        ended_at: None,
        claimed_by: None,
        source: r.source.stored().map(str::to_owned),
        note: r.reason.as_ref().map(Reason::to_string),
        reason: r.reason.as_ref().and_then(|r| serde_json::to_string(r).ok()),
        duress: r.duress.then_some(true),
        silent_texted_at: None,
        hold_reason: None,
        hold_by: None,
        hold_at: None,
        purged_at: None,
    }
}

/// Stores a new alert inside `txn`: the row, its "triggered" event, the phone's watch token,
/// the contacts' texts and, for a server-raised alert, where the person was as fix 0 (all or
/// nothing). Once `txn` commits, call [`raised`].
pub async fn raise_in(
    state: &Core,
    txn: &sea_orm::DatabaseTransaction,
    row: &Alert,
    first_fix: Option<&alertme_protocol::Fix>,
) -> Result<()> {
    alerts::ActiveModel::from(row.clone()).insert(txn).await?;
    if let Some(fix) = first_fix {
        crate::domain::positions::add_fix_zero(state, txn, &row.id, fix).await?;
    }
    event(txn, &row.id, "triggered", None, row.started_at).await?;
    watch_tokens::ActiveModel {
        token_hash: Set(accounts::hash_token(&device_watch_token(state, &row.id))),
        alert_id: Set(row.id.clone()),
        label: Set(DEVICE_WATCH_LABEL.to_owned()),
        created_at: Set(row.started_at),
        revoked_at: Set(None),
        first_opened_at: Set(None),
    }
    .insert(txn)
    .await?;
    crate::domain::notify::alert_started(txn, row, &state.secret, state.settings.alert_texts_per_hour)
        .await?;
    Ok(())
}

/// After a new alert committed: send its texts, bring it live, publish delivery state.
pub async fn raised(state: &Core, row: &Alert) -> Result<Arc<Session>> {
    state.outbox.wake();
    tracing::info!(alert = %row.id, source = row.source.as_deref().unwrap_or("sos"), "alert raised");
    let session = session_for(state, row).await?;
    crate::domain::notify::refresh(state, &row.id).await;
    Ok(session)
}

/// The phone's own watch token for an alert.
pub fn device_watch_token(state: &Core, alert_id: &str) -> String {
    accounts::watch_token(&state.secret, alert_id, DEVICE_WATCH_LABEL)
}

async fn by_client_id(
    db: &DatabaseConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<alerts::Model>> {
    Ok(alerts::Entity::find()
        .filter(alerts::Column::UserId.eq(user_id))
        .filter(alerts::Column::ClientId.eq(client_id))
        .one(db)
        .await?)
}

/// The user's newest still-active alert, for `welcome`.
pub async fn active_of_user(db: &DatabaseConnection, user_id: &str) -> Result<Option<alerts::Model>> {
    Ok(alerts::Entity::find()
        .filter(alerts::Column::UserId.eq(user_id))
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        // A duress alert must stay invisible on the phone: whoever holds it may be watching.
        .filter(alerts::Column::Duress.is_null())
        .order_by_desc(alerts::Column::StartedAt)
        .one(db)
        .await?)
}

/// Of a live audio part, a restart reads the first bytes (the init segment is in them) ...
const RESTORE_HEAD: u64 = 64 * 1024;
/// ... and the last (the late-join window: ~60 s at 32 kbit/s), not the whole part: a long
/// SOS's recording stays in the database instead of in memory.
const RESTORE_TAIL: u64 = 256 * 1024;

/// The live session of an active alert (loading it if needed), or a detached one for an ended
/// alert that serves a final snapshot. In a cluster this node takes the alert over (the phone
/// is here, or the alert was raised here).
pub async fn session_for(state: &Core, row: &alerts::Model) -> Result<Arc<Session>> {
    session_owned(state, row, None).await
}

/// [`session_for`], with the ownership this node already has (it adopted the alert).
async fn session_owned(state: &Core, row: &alerts::Model, owned: Option<Owned>) -> Result<Arc<Session>> {
    if let Some(s) = state.hub.get(&row.id) {
        return Ok(s);
    }
    let active = row.status == AlertStatus::Active.as_str();
    let session = match state.hub.ended(&row.id).filter(|_| !active) {
        // Ended alerts are read again and again (pages opened after the end): kept a while,
        // so a request does not reload the trail. Their delivery state may still move.
        Some(s) => s,
        None if active => match &state.cluster {
            None => state.hub.open(seed(state, row).await?),
            Some(c) => {
                // One takeover of an alert at a time here: two phone connections resuming it at
                // once must not leave the session with an older fence than the row's.
                let turn = c.turn(&row.id).await;
                if let Some(s) = state.hub.get(&row.id) {
                    return Ok(s);
                }
                let owned = match owned {
                    Some(o) => Some(o),
                    None => c.take(&row.id).await.map_err(cluster_error)?,
                };
                // Read again once owned: the alert may have changed (or ended) meanwhile.
                let fresh = find(&state.db, &row.id).await?.ok_or(Error::NotFound)?;
                match owned {
                    Some(owned) if fresh.status == AlertStatus::Active.as_str() => {
                        let mut seed = seed(state, &fresh).await?;
                        seed.owned = Some(owned);
                        let s = state.hub.open(seed);
                        c.serve_owned(s.clone()).await.map_err(cluster_error)?;
                        s
                    }
                    _ => {
                        c.release(&row.id).await;
                        drop(turn);
                        return Box::pin(session_owned(state, &fresh, None)).await;
                    }
                }
            }
        },
        None => state.hub.keep_ended(Session::new(
            seed(state, row).await?,
            tokio::sync::broadcast::channel(1).0,
            None,
        )),
    };
    {
        let _reload = session.deliveries_reload.lock().await;
        session.set_deliveries(crate::storage::outbox::deliveries(&state.db, &row.id).await?);
    }
    Ok(session)
}

async fn seed(state: &Core, row: &alerts::Model) -> Result<SessionSeed> {
    let user = users::Entity::find_by_id(row.user_id.clone()).one(&state.db).await?.ok_or(Error::NotFound)?;
    let trail = crate::storage::entity::fixes::Entity::find()
        .filter(crate::storage::entity::fixes::Column::AlertId.eq(row.id.clone()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(fix_from_row)
        .collect();
    let refused = crate::storage::entity::refused_fixes::Entity::find()
        .filter(crate::storage::entity::refused_fixes::Column::AlertId.eq(row.id.clone()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| r.seq as u64)
        .collect();
    let pos = recordings::audio_position(&state.db, &row.id).await?;
    let audio_part = match pos.part {
        Some((part, mime, len)) if len <= RESTORE_HEAD + RESTORE_TAIL => {
            let head = recordings::read_part(&state.db, &row.id, part, 0..len).await?;
            Some(RestoredPart { part, mime, len, head, tail: Vec::new() })
        }
        Some((part, mime, len)) => {
            let head = recordings::read_part(&state.db, &row.id, part, 0..RESTORE_HEAD).await?;
            let tail = recordings::read_part(&state.db, &row.id, part, len - RESTORE_TAIL..len).await?;
            Some(RestoredPart { part, mime, len, head, tail })
        }
        None => None,
    };
    let note_rows = alert_events::Entity::find()
        .filter(alert_events::Column::AlertId.eq(row.id.clone()))
        .filter(alert_events::Column::Kind.eq("note"))
        .order_by_asc(alert_events::Column::Id)
        .all(&state.db)
        .await?;
    let authors = crate::storage::entity::responders::Entity::find()
        .filter(
            crate::storage::entity::responders::Column::Id
                .is_in(note_rows.iter().filter_map(|n| n.actor.clone())),
        )
        .all(&state.db)
        .await?;
    let notes = note_rows
        .into_iter()
        .map(|n| alertme_protocol::Note {
            by: authors
                .iter()
                .find(|a| Some(&a.id) == n.actor.as_ref())
                .map_or_else(String::new, |a| a.name.clone()),
            text: n.detail.unwrap_or_default(),
            at_ms: n.at,
        })
        .collect();
    Ok(SessionSeed {
        notes,
        info: info_of(row, &user.name),
        user_id: row.user_id.clone(),
        trail,
        refused,
        audio_acked: pos.acked,
        audio_part,
        owned: None,
    })
}

/// Wire summary of a stored alert.
pub fn info_of(row: &alerts::Model, user_name: &str) -> AlertInfo {
    AlertInfo {
        id: row.id.clone(),
        user_name: user_name.to_owned(),
        status: AlertStatus::parse(&row.status).unwrap_or(AlertStatus::Active),
        started_ms: row.started_at,
        ended_ms: row.ended_at,
        claimed_by: row.claimed_by.clone(),
        audio_mime: row.audio_mime.clone(),
        source: row.source.clone().unwrap_or_else(|| "sos".into()),
        note: row.note.clone(),
        reason: row.parsed_reason(),
        duress: row.duress.unwrap_or(false),
    }
}

/// Ends an active alert (idempotent) and tells everyone; returns the final status.
pub async fn end(state: &Core, alert_id: &str, status: AlertStatus, actor: &str) -> Result<AlertStatus> {
    let now = crate::now_ms();
    let txn = crate::storage::write_txn(&state.db).await?;
    let res = alerts::Entity::update_many()
        .col_expr(alerts::Column::Status, status.as_str().into())
        .col_expr(alerts::Column::EndedAt, now.into())
        .filter(alerts::Column::Id.eq(alert_id))
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        drop(txn);
        let row =
            alerts::Entity::find_by_id(alert_id.to_owned()).one(&state.db).await?.ok_or(Error::NotFound)?;
        return Ok(AlertStatus::parse(&row.status).unwrap_or(status));
    }
    event(&txn, alert_id, status.as_str(), Some(actor), now).await?;
    crate::domain::notify::alert_ended(&txn, alert_id).await?;
    txn.commit().await?;
    state.outbox.wake();
    tracing::info!(alert = %alert_id, status = status.as_str(), "alert ended");
    state
        .changed(alert_id, |s| {
            s.update_info(|i| {
                i.status = status;
                i.ended_ms = Some(now);
            })
        })
        .await;
    closed(state, alert_id).await;
    Ok(status)
}

/// The person ends their own SOS with their PIN. With the duress PIN the answer is the same
/// (`cancelled`), but the alert goes on silently: flagged duress, noted, and the contacts told not
/// to call. Whoever forced the cancel sees a cancelled SOS.
pub async fn cancel_with_pin(
    state: &Core,
    device: &Device,
    alert_id: &str,
    pin: &str,
) -> Result<AlertStatus> {
    let row = alerts::Entity::find_by_id(alert_id.to_owned())
        .one(&state.db)
        .await?
        .filter(|a| a.user_id == device.user_id)
        .ok_or(Error::NotFound)?;
    let kind = crate::domain::pins::check_pin(state, &device.user_id, pin).await?;
    if row.status != AlertStatus::Active.as_str() {
        return Ok(AlertStatus::Cancelled);
    }
    if kind == crate::domain::pins::PinKind::Normal {
        end(state, alert_id, AlertStatus::Cancelled, &device.id).await?;
        return Ok(AlertStatus::Cancelled);
    }
    let now = crate::now_ms();
    let note = "cancelled with the duress PIN: may be forced to".to_owned();
    let txn = crate::storage::write_txn(&state.db).await?;
    // Conditional, so a repeated duress cancel (or two at once) flags and texts only once.
    let res = alerts::Entity::update_many()
        .col_expr(alerts::Column::Duress, Some(true).into())
        .col_expr(alerts::Column::Note, Some(note.clone()).into())
        .filter(alerts::Column::Id.eq(alert_id))
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        .filter(alerts::Column::Duress.is_null())
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Ok(AlertStatus::Cancelled);
    }
    event(&txn, alert_id, "duress", Some(&device.id), now).await?;
    crate::domain::notify::duress_cancel(&txn, alert_id).await?;
    txn.commit().await?;
    state.outbox.wake();
    tracing::warn!(alert = %alert_id, "duress PIN used to cancel; the alert goes on silently");
    state
        .changed(alert_id, |s| {
            s.update_info(|i| {
                i.duress = true;
                i.note = Some(note);
            })
        })
        .await;
    Ok(AlertStatus::Cancelled)
}

/// Records that a responder took an active alert.
pub async fn claim(state: &Core, alert_id: &str, responder: &accounts::Responder) -> Result<()> {
    let now = crate::now_ms();
    let txn = crate::storage::write_txn(&state.db).await?;
    let res = alerts::Entity::update_many()
        .col_expr(alerts::Column::ClaimedBy, responder.name.clone().into())
        .filter(alerts::Column::Id.eq(alert_id))
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    event(&txn, alert_id, "claimed", Some(&responder.id), now).await?;
    txn.commit().await?;
    state.changed(alert_id, |s| s.update_info(|i| i.claimed_by = Some(responder.name.clone()))).await;
    Ok(())
}

pub(crate) async fn event<C: ConnectionTrait>(
    db: &C,
    alert_id: &str,
    kind: &str,
    actor: Option<&str>,
    at: i64,
) -> Result<()> {
    event_with(db, alert_id, kind, actor, at, None).await
}

/// An event with words of detail (a hold's reason, what retention deleted).
pub(crate) async fn event_with<C: ConnectionTrait>(
    db: &C,
    alert_id: &str,
    kind: &str,
    actor: Option<&str>,
    at: i64,
    detail: Option<String>,
) -> Result<()> {
    alert_events::ActiveModel {
        alert_id: Set(alert_id.to_owned()),
        kind: Set(kind.to_owned()),
        actor: Set(actor.map(str::to_owned)),
        at: Set(at),
        detail: Set(detail),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Longest note a responder can add.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Adds a responder's note to an alert (active or ended) and tells the other consoles.
pub async fn note(state: &Core, alert_id: &str, responder: &accounts::Responder, text: &str) -> Result<()> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return Err(Error::BadRequest(format!("a note is 1 to {MAX_NOTE_CHARS} characters")));
    }
    alerts::Entity::find_by_id(alert_id.to_owned()).one(&state.db).await?.ok_or(Error::NotFound)?;
    let now = crate::now_ms();
    alert_events::ActiveModel {
        alert_id: Set(alert_id.to_owned()),
        kind: Set("note".into()),
        actor: Set(Some(responder.id.clone())),
        at: Set(now),
        detail: Set(Some(text.to_owned())),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    let note = alertme_protocol::Note { by: responder.name.clone(), text: text.to_owned(), at_ms: now };
    state.changed(alert_id, |s| s.add_note(note)).await;
    Ok(())
}

fn cluster_error(e: ClusterError) -> Error {
    match e {
        ClusterError::Db(e) => Error::Db(e.into()),
        e => Error::Unavailable(format!("cluster: {e}")),
    }
}

/// An alert's session left memory (it ended): the writer forgets it, and in a cluster its
/// ownership row goes.
async fn closed(state: &Core, alert_id: &str) {
    let owned = state.hub.get(alert_id).is_some();
    state.hub.close(alert_id);
    state.store.forget(alert_id).await;
    // The end's seal: the chain head once everything queued before the end is stored.
    let (db, key, store, id) =
        (state.db.clone(), state.seal_key.clone(), state.store.clone(), alert_id.to_owned());
    tokio::spawn(async move {
        store.flush().await;
        if let Err(e) = crate::domain::evidence::bundle::seal(&db, &key, &id, "ended").await {
            tracing::error!(alert = %id, error = %e, "sealing the ended alert's chain failed");
        }
    });
    if let (Some(c), true) = (&state.cluster, owned) {
        c.release(alert_id).await;
    }
}

/// How long a watcher waits, in a cluster, for an alert whose owner is gone to be taken over.
const ADOPT_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// What a watcher of an alert subscribes to: on one server its session; in a cluster this
/// node's mirror of it (so that a change of owner never reaches the watcher), adopting the
/// alert first if no node holds it.
pub async fn watch_view(state: &Core, row: &alerts::Model) -> Result<Arc<Session>> {
    let Some(c) = &state.cluster else { return session_for(state, row).await };
    if row.status != AlertStatus::Active.as_str() {
        return session_for(state, row).await;
    }
    let deadline = tokio::time::Instant::now() + ADOPT_WAIT;
    loop {
        if let Some(m) = c.mirror(&row.id).await.map_err(cluster_error)? {
            return Ok(m);
        }
        // Nobody answered for it: it may have ended meanwhile ...
        let row = find(&state.db, &row.id).await?.ok_or(Error::NotFound)?;
        if row.status != AlertStatus::Active.as_str() {
            return session_for(state, &row).await;
        }
        // ... or its owner is gone: take it if it stopped renewing (or it has none).
        if let Some(owned) = c.adopt(&row.id).await.map_err(cluster_error)? {
            session_owned(state, &row, Some(owned)).await?;
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Unavailable("the server holding this alert does not answer; retry".into()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// What a page shows of an alert before its socket opens: the live state where this node has
/// it, else the stored one.
pub async fn info_now(state: &Core, row: &alerts::Model) -> Result<AlertInfo> {
    if let Some(s) = state.hub.get(&row.id).or_else(|| state.hub.mirror(&row.id)) {
        return Ok(s.info());
    }
    if state.cluster.is_some() {
        let user = users::Entity::find_by_id(row.user_id.clone()).one(&state.db).await?;
        return Ok(info_of(row, user.as_ref().map_or("", |u| u.name.as_str())));
    }
    Ok(session_for(state, row).await?.info())
}

/// Cluster: another node changed an alert this node owns (claim, note, end, delivery state):
/// its session takes the stored state.
pub async fn reload_live(state: &Core, alert_id: &str) -> Result<()> {
    let Some(session) = state.hub.get(alert_id) else { return Ok(()) };
    let row = alerts::Entity::find_by_id(alert_id.to_owned()).one(&state.db).await?.ok_or(Error::NotFound)?;
    let fresh = seed(state, &row).await?;
    let info = fresh.info;
    session.set_notes(fresh.notes);
    session.update_info(|i| {
        let changed = i.status != info.status
            || i.claimed_by != info.claimed_by
            || i.duress != info.duress
            || i.note != info.note
            || i.reason != info.reason
            || i.ended_ms != info.ended_ms;
        if changed {
            *i = AlertInfo { audio_mime: i.audio_mime.clone().or(info.audio_mime.clone()), ..info };
        }
    });
    crate::domain::notify::refresh(state, alert_id).await;
    if row.status != AlertStatus::Active.as_str() {
        closed(state, alert_id).await;
    }
    Ok(())
}

/// Cluster: the writer found that another node took this alert over: this node's session
/// leaves memory (its phone closes as superseded).
pub fn fenced_out(state: &Core, session: &Arc<Session>) {
    if state.hub.get(&session.alert_id).is_some_and(|s| Arc::ptr_eq(&s, session)) {
        tracing::info!(alert = %session.alert_id, "another node owns this alert now");
        state.hub.disown(&session.alert_id);
    }
}

/// Cluster: applies other nodes' changes to the alerts this node owns, as they come.
pub async fn reload_touched(state: Core, mut touched: tokio::sync::mpsc::Receiver<String>) {
    while let Some(id) = touched.recv().await {
        if let Err(e) = reload_live(&state, &id).await {
            tracing::warn!(alert = %id, error = %e, "could not reload a changed alert");
        }
    }
}

/// Cluster: takes over, every few seconds, active alerts whose owner is gone (it stopped
/// renewing) and that no phone brought elsewhere, so that each one always has an owner
/// (silent-phone texts, consoles).
pub async fn adopt_orphans(state: Core) {
    let Some(c) = state.cluster.clone() else { return std::future::pending().await };
    let mut tick = tokio::time::interval(crate::cluster::RENEW_EVERY * 2);
    loop {
        tick.tick().await;
        let cutoff = crate::now_ms() - crate::cluster::OWNER_TIMEOUT.as_millis() as i64;
        let orphans = match crate::storage::owners::orphans(&state.db, cutoff, 50).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for orphaned alerts");
                continue;
            }
        };
        for id in orphans {
            let adopted = async {
                let Some(owned) = c.adopt(&id).await.map_err(cluster_error)? else { return Ok(()) };
                let row = find(&state.db, &id).await?.ok_or(Error::NotFound)?;
                tracing::info!(alert = %id, "adopted an alert whose node is gone");
                session_owned(&state, &row, Some(owned)).await.map(|_| ())
            };
            if let Err(e) = adopted.await {
                tracing::warn!(alert = %id, error = %e, "could not adopt an orphaned alert");
            }
        }
    }
}

/// Brings every active alert back live after a restart, so phones resume and watchers
/// reconnect. In a cluster nothing is loaded at start: phones, watchers and
/// [`adopt_orphans`] bring alerts to the nodes that need them.
pub async fn restore_active(state: &Core) -> anyhow::Result<usize> {
    if state.cluster.is_some() {
        return Ok(0);
    }
    let rows = alerts::Entity::find()
        .filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
        .all(&state.db)
        .await?;
    for row in &rows {
        session_for(state, row).await.map_err(|e| anyhow::anyhow!("restoring alert {}: {e}", row.id))?;
    }
    Ok(rows.len())
}

/// Alerts for the console's lists, newest first: active ones, or ended ones whose person's name
/// contains `q` (case-insensitive).
pub async fn history(state: &Core, ended: bool, q: Option<&str>, limit: u64) -> Result<Vec<AlertInfo>> {
    use sea_orm::QuerySelect;
    let mut find = alerts::Entity::find().order_by_desc(alerts::Column::StartedAt);
    find = if ended {
        find.filter(alerts::Column::Status.ne(AlertStatus::Active.as_str()))
    } else {
        find.filter(alerts::Column::Status.eq(AlertStatus::Active.as_str()))
    };
    if let Some(q) = q {
        // Only the matching people's alerts: a name filter, not a scan of every user.
        use sea_orm::sea_query::{Expr, ExprTrait, Func};
        let ids: Vec<String> = users::Entity::find()
            .filter(Expr::expr(Func::lower(Expr::col(users::Column::Name))).like(format!("%{q}%")))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        find = find.filter(alerts::Column::UserId.is_in(ids));
    }
    let rows = find.limit(limit).all(&state.db).await?;
    let people = users::Entity::find()
        .filter(users::Column::Id.is_in(rows.iter().map(|r| r.user_id.clone())))
        .all(&state.db)
        .await?;
    Ok(rows
        .iter()
        .map(|r| info_of(r, people.iter().find(|u| u.id == r.user_id).map_or("", |u| u.name.as_str())))
        .collect())
}

/// An alert by id.
pub async fn find(db: &DatabaseConnection, alert_id: &str) -> Result<Option<Alert>> {
    Ok(alerts::Entity::find_by_id(alert_id.to_owned()).one(db).await?)
}

/// Records the audio format a phone named, the first time one is named; returns the row.
pub async fn set_audio_mime(db: &DatabaseConnection, row: &Alert, mime: &str) -> Result<Alert> {
    let mut am: alerts::ActiveModel = row.clone().into();
    am.audio_mime = Set(Some(mime.to_owned()));
    Ok(am.update(db).await?)
}
