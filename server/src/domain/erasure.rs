//! Erasure: a person deletes their account and everything about them (alerts on legal hold wait
//! for the hold); a contact's number asks to be forgotten.

use hmac::{Hmac, Mac};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use sha2::Sha256;

use crate::domain::accounts::Device;
use crate::domain::alerts::{Raise, Source};
use crate::domain::{pins, Core};
use crate::error::{Error, Result};
use crate::storage::entity::{
    alert_events, alert_owners, alerts, audio_chunks, audio_parts, contacts, custody, devices,
    evidence_seals, fixes, forgotten_numbers, geozones, refused_fixes, sms_outbox, timers, user_pins,
    user_positions, users, verifications, watch_tokens,
};

/// What an erasure did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// Alerts deleted with everything stored about them.
    pub alerts: u64,
    /// Alerts kept because a responder holds them (deleted when the hold is lifted).
    pub held: u64,
}

/// The person behind `device` erases their account, confirmed with their PIN. With the duress
/// PIN the answer is the same but nothing is erased, and a silent alert is raised: someone may
/// be forcing them to wipe what would help them.
pub async fn erase_account(state: &Core, device: &Device, pin: &str) -> Result<Erased> {
    match pins::check_pin(state, &device.user_id, pin).await? {
        pins::PinKind::Normal => erase_user(state, &device.user_id).await,
        pins::PinKind::Duress => {
            let txn = crate::storage::write_txn(&state.db).await?;
            let row = crate::domain::alerts::new_alert(Raise {
                source: Source::Sos,
                user_id: &device.user_id,
                device_id: &device.id,
                client_id: &format!("duress:erase:{}", crate::now_ms()),
                audio_mime: None,
                reason: Some(alertme_protocol::Reason::DuressErase),
                duress: true,
            });
            let last = crate::domain::positions::last_known(&txn, &device.user_id).await?;
            crate::domain::alerts::raise_in(state, &txn, &row, last.as_ref()).await?;
            txn.commit().await?;
            tracing::warn!(alert = %row.id, "duress PIN used to erase an account; silent alert raised, nothing erased");
            crate::domain::alerts::raised(state, &row).await?;
            Ok(Erased::default())
        }
    }
}

/// Deletes a person and everything stored about them: their alerts with fixes, recordings,
/// events, links, texts, seals and custody log; contacts, devices, timers, zones, PIN, last
/// position. Alerts on legal hold stay, and so does a placeholder of the person (no name, no
/// number) until the last hold is lifted. Refused while an SOS of theirs is live.
pub async fn erase_user(state: &Core, user_id: &str) -> Result<Erased> {
    let (erased, devices) = erase_user_in(&state.db, user_id).await?;
    for d in &devices {
        state.hub.revoke_device(d);
    }
    state.zone_free.remove(user_id);
    Ok(erased)
}

/// [`erase_user`] in the database alone; returns the person's devices (for their sockets).
pub async fn erase_user_in(db: &crate::domain::Db, user_id: &str) -> Result<(Erased, Vec<String>)> {
    let txn = crate::storage::write_txn(db).await?;
    let user = users::Entity::find_by_id(user_id.to_owned()).one(&txn).await?.ok_or(Error::NotFound)?;
    let theirs = alerts::Entity::find().filter(alerts::Column::UserId.eq(user_id)).all(&txn).await?;
    if theirs
        .iter()
        .any(|a| a.status == alertme_protocol::AlertStatus::Active.as_str() && a.duress != Some(true))
    {
        return Err(Error::Conflict("an SOS of yours is live: end it first".into()));
    }
    // A live duress alert (the person may not even know it runs) is kept like a held one.
    let live = alertme_protocol::AlertStatus::Active.as_str();
    let (held, gone): (Vec<_>, Vec<_>) =
        theirs.into_iter().partition(|a| a.hold_at.is_some() || a.status == live);
    let gone: Vec<String> = gone.into_iter().map(|a| a.id).collect();
    let device_ids: Vec<String> = devices::Entity::find()
        .select_only()
        .column(devices::Column::Id)
        .filter(devices::Column::UserId.eq(user_id))
        .into_tuple()
        .all(&txn)
        .await?;
    timers::Entity::delete_many().filter(timers::Column::UserId.eq(user_id)).exec(&txn).await?;
    delete_alerts(&txn, &gone).await?;
    geozones::Entity::delete_many().filter(geozones::Column::UserId.eq(user_id)).exec(&txn).await?;
    user_positions::Entity::delete_many()
        .filter(user_positions::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    user_pins::Entity::delete_many().filter(user_pins::Column::UserId.eq(user_id)).exec(&txn).await?;
    // Texts about no alert: "you were added as a contact" on their behalf, their sign-in codes.
    // (Their alerts' texts went with those alerts; a held alert keeps its record; texts to them
    // about other people's alerts are those people's evidence.)
    sms_outbox::Entity::delete_many()
        .filter(sms_outbox::Column::AlertId.is_null())
        .filter(
            sea_orm::Condition::any()
                .add(sms_outbox::Column::UserId.eq(user_id))
                .add(sms_outbox::Column::ToPhone.eq(&user.phone)),
        )
        .exec(&txn)
        .await?;
    verifications::Entity::delete_many()
        .filter(verifications::Column::Phone.eq(&user.phone))
        .exec(&txn)
        .await?;
    if held.is_empty() {
        contacts::Entity::delete_many().filter(contacts::Column::UserId.eq(user_id)).exec(&txn).await?;
        devices::Entity::delete_many().filter(devices::Column::UserId.eq(user_id)).exec(&txn).await?;
        users::Entity::delete_by_id(user_id.to_owned()).exec(&txn).await?;
    } else {
        // Held alerts keep their texts' records, which name contacts: the contacts stay with
        // them, unreachable (no device can sign in, nobody is texted: the person is gone).
        devices::Entity::update_many()
            .col_expr(devices::Column::RevokedAt, crate::now_ms().into())
            .filter(devices::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        users::Entity::update_many()
            .col_expr(users::Column::Name, "(erased)".into())
            .col_expr(users::Column::Phone, format!("erased:{user_id}").into())
            .col_expr(users::Column::ErasedAt, crate::now_ms().into())
            .filter(users::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    tracing::info!(alerts = gone.len(), held = held.len(), "an account was erased");
    Ok((Erased { alerts: gone.len() as u64, held: held.len() as u64 }, device_ids))
}

/// Every row of these alerts, children first.
async fn delete_alerts<C: ConnectionTrait>(db: &C, ids: &[String]) -> Result<()> {
    for group in ids.chunks(100) {
        let g = group.to_vec();
        fixes::Entity::delete_many().filter(fixes::Column::AlertId.is_in(g.clone())).exec(db).await?;
        refused_fixes::Entity::delete_many()
            .filter(refused_fixes::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        audio_chunks::Entity::delete_many()
            .filter(audio_chunks::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        audio_parts::Entity::delete_many()
            .filter(audio_parts::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        alert_events::Entity::delete_many()
            .filter(alert_events::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        watch_tokens::Entity::delete_many()
            .filter(watch_tokens::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        sms_outbox::Entity::delete_many()
            .filter(sms_outbox::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        custody::Entity::delete_many().filter(custody::Column::AlertId.is_in(g.clone())).exec(db).await?;
        evidence_seals::Entity::delete_many()
            .filter(evidence_seals::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        alert_owners::Entity::delete_many()
            .filter(alert_owners::Column::AlertId.is_in(g.clone()))
            .exec(db)
            .await?;
        alerts::Entity::delete_many().filter(alerts::Column::Id.is_in(g)).exec(db).await?;
    }
    Ok(())
}

/// Erasures that waited (a hold, a live duress alert): tried again, by the daily sweep.
pub async fn finish_waiting(state: &Core) -> Result<()> {
    let waiting: Vec<String> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::ErasedAt.is_not_null())
        .into_tuple()
        .all(&state.db)
        .await?;
    for id in waiting {
        if let Err(e) = erase_user(state, &id).await {
            tracing::error!(error = %e, "an erasure that waited could not be completed");
        }
    }
    Ok(())
}

/// After a hold is lifted: an erased person's alerts without a hold go now, and the person's
/// placeholder with the last of them.
pub async fn after_hold_lifted(state: &Core, user_id: &str) -> Result<()> {
    let erased =
        users::Entity::find_by_id(user_id.to_owned()).one(&state.db).await?.and_then(|u| u.erased_at);
    if erased.is_some() {
        erase_user(state, user_id).await?;
    }
    Ok(())
}

/// A keyed hash of a number (the list of forgotten numbers must not be a list of numbers).
fn number_mark(secret: &[u8], phone: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"alertme-forgotten-v1\0");
    mac.update(phone.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A contact's number asks to be forgotten (a FORGET reply): it leaves every contact list, its
/// pending texts are dropped, past texts' records keep no number, and it is never added again.
pub async fn forget_number(state: &Core, phone: &str) -> Result<u64> {
    let txn = crate::storage::write_txn(&state.db).await?;
    let gone = contacts::Entity::find().filter(contacts::Column::Phone.eq(phone)).all(&txn).await?;
    let ids: Vec<String> = gone.iter().map(|c| c.id.clone()).collect();
    sms_outbox::Entity::delete_many()
        .filter(sms_outbox::Column::ToPhone.eq(phone))
        .filter(sms_outbox::Column::Status.eq(crate::storage::outbox::status::PENDING))
        .exec(&txn)
        .await?;
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::ToPhone, "(forgotten)".into())
        .col_expr(sms_outbox::Column::Body, Option::<String>::None.into())
        .filter(sms_outbox::Column::ToPhone.eq(phone))
        .exec(&txn)
        .await?;
    contacts::Entity::delete_many().filter(contacts::Column::Id.is_in(ids)).exec(&txn).await?;
    let mark = number_mark(&state.secret, phone);
    if forgotten_numbers::Entity::find_by_id(mark.clone()).one(&txn).await?.is_none() {
        forgotten_numbers::ActiveModel { phone_hash: Set(mark), at: Set(crate::now_ms()) }
            .insert(&txn)
            .await?;
    }
    txn.commit().await?;
    tracing::info!(contacts = gone.len(), "a number asked to be forgotten");
    Ok(gone.len() as u64)
}

/// Whether a number asked to be forgotten (it cannot be added as a contact again).
pub async fn is_forgotten<C: ConnectionTrait>(db: &C, secret: &[u8], phone: &str) -> Result<bool> {
    Ok(forgotten_numbers::Entity::find_by_id(number_mark(secret, phone)).one(db).await?.is_some())
}
