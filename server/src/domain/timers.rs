//! Check-in timers (the dead man's switch): a prompt at the deadline, an alert after the grace
//! period, each exactly once, across restarts and with several servers on one database.
//!
//! Deadlines are stored in UTC milliseconds of the server clock (client clocks never decide).
//! One task sleeps until the earliest deadline; a timer moves `active → grace → fired` only by
//! conditional updates, and the alert is created in the same transaction as `fired`, so two
//! servers racing for one timer raise one alert.

use std::sync::Arc;
use std::time::Duration;

use alertme_protocol::{PhoneServerMsg, Reason, Timer, TimerStart};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::Notify;

use crate::domain::accounts::Device;
use crate::domain::alerts::{self, Raise, Source};
use crate::domain::Core;
use crate::domain::{pins, positions};
use crate::error::{Error, Result};
use crate::storage::entity::timers;

/// Timer states.
pub mod status {
    /// Counting down.
    pub const ACTIVE: &str = "active";
    /// Deadline passed; the phone was prompted; the alert comes at `deadline_at`.
    pub const GRACE: &str = "grace";
    /// The person checked in.
    pub const CHECKED_IN: &str = "checked_in";
    /// The person cancelled it.
    pub const CANCELLED: &str = "cancelled";
    /// The alert was raised.
    pub const FIRED: &str = "fired";
}

/// Longest a timer may run.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Longest grace period.
const MAX_GRACE: Duration = Duration::from_secs(600);

fn wire(t: &timers::Model) -> Timer {
    Timer {
        id: t.id.clone(),
        status: t.status.clone(),
        deadline_ms: t.deadline_at,
        grace_s: (t.grace_ms / 1000) as u64,
        note: t.note.clone(),
        destination: t.destination.clone(),
    }
}

fn text_field(v: Option<String>, name: &str) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 200 => {
            Err(Error::BadRequest(format!("{name} is at most 200 characters")))
        }
        other => Ok(other),
    }
}

/// Starts a timer for the device's person.
pub async fn start(state: &Core, device: &Device, req: TimerStart) -> Result<Timer> {
    if req.duration_s < 60 || Duration::from_secs(req.duration_s) > MAX_DURATION {
        return Err(Error::BadRequest("duration_s must be 60 s to 24 h".into()));
    }
    let grace = Duration::from_secs(req.grace_s.unwrap_or(60));
    if grace > MAX_GRACE {
        return Err(Error::BadRequest("grace_s is at most 600".into()));
    }
    let now = state.clock.now_ms();
    let row = timers::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(device.user_id.clone()),
        device_id: Set(device.id.clone()),
        note: Set(text_field(req.note, "note")?),
        destination: Set(text_field(req.destination, "destination")?),
        deadline_at: Set(now + req.duration_s as i64 * 1000),
        grace_ms: Set(grace.as_millis() as i64),
        status: Set(status::ACTIVE.into()),
        alert_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await?;
    state.timers_wake.notify_one();
    Ok(wire(&row))
}

/// The person's timers that still count down.
pub async fn list(state: &Core, device: &Device) -> Result<Vec<Timer>> {
    Ok(timers::Entity::find()
        .filter(timers::Column::UserId.eq(device.user_id.clone()))
        .filter(timers::Column::Status.is_in([status::ACTIVE, status::GRACE]))
        .order_by_asc(timers::Column::DeadlineAt)
        .all(&state.db)
        .await?
        .iter()
        .map(wire)
        .collect())
}

async fn own_running(state: &Core, device: &Device, id: &str) -> Result<timers::Model> {
    timers::Entity::find_by_id(id.to_owned())
        .filter(timers::Column::UserId.eq(device.user_id.clone()))
        .filter(timers::Column::Status.is_in([status::ACTIVE, status::GRACE]))
        .one(&state.db)
        .await?
        .ok_or(Error::NotFound)
}

/// Pushes the deadline back (from the later of now and the current deadline).
pub async fn extend(state: &Core, device: &Device, id: &str, by_s: u64) -> Result<Timer> {
    if by_s == 0 || Duration::from_secs(by_s) > MAX_DURATION {
        return Err(Error::BadRequest("duration_s must be 1 s to 24 h".into()));
    }
    let t = own_running(state, device, id).await?;
    let now = state.clock.now_ms();
    let base = if t.status == status::GRACE { now } else { t.deadline_at.max(now) };
    let res = timers::Entity::update_many()
        .col_expr(timers::Column::DeadlineAt, (base + by_s as i64 * 1000).into())
        .col_expr(timers::Column::Status, status::ACTIVE.into())
        .col_expr(timers::Column::UpdatedAt, now.into())
        .filter(timers::Column::Id.eq(id))
        .filter(timers::Column::Status.eq(t.status.clone()))
        .exec(&state.db)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::Conflict("the timer changed meanwhile (it may have fired)".into()));
    }
    state.timers_wake.notify_one();
    let t = timers::Entity::find_by_id(id.to_owned()).one(&state.db).await?.ok_or(Error::NotFound)?;
    Ok(wire(&t))
}

/// Ends a running timer (`checked_in` or `cancelled`) with the PIN. With the duress PIN the
/// answer is the same, and an alert flagged "possible duress" is raised silently.
pub async fn finish(
    state: &Core,
    device: &Device,
    id: &str,
    pin: &str,
    outcome: &'static str,
) -> Result<Timer> {
    let t = own_running(state, device, id).await?;
    let kind = pins::check_pin(state, &device.user_id, pin).await?;
    let now = state.clock.now_ms();
    let txn = crate::storage::write_txn(&state.db).await?;
    let mut alert = None;
    if kind == pins::PinKind::Duress {
        let row = alerts::new_alert(Raise {
            source: Source::Timer,
            user_id: &t.user_id,
            device_id: &t.device_id,
            client_id: &format!("duress:{}", t.id),
            audio_mime: None,
            reason: Some(Reason::DuressCheckIn { note: t.note.clone() }),
            duress: true,
        });
        let last = positions::last_known(&txn, &t.user_id).await?;
        alerts::raise_in(state, &txn, &row, last.as_ref()).await?;
        alert = Some(row);
    }
    let res = timers::Entity::update_many()
        .col_expr(timers::Column::Status, outcome.into())
        .col_expr(timers::Column::AlertId, alert.as_ref().map(|a| a.id.clone()).into())
        .col_expr(timers::Column::UpdatedAt, now.into())
        .filter(timers::Column::Id.eq(id))
        .filter(timers::Column::Status.is_in([status::ACTIVE, status::GRACE]))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    txn.commit().await?;
    if let Some(row) = &alert {
        tracing::warn!(alert = %row.id, "duress PIN used; silent alert raised");
        alerts::raised(state, row).await?;
    }
    state.timers_wake.notify_one();
    // The same answer whichever PIN was used.
    let mut w = wire(&t);
    w.status = outcome.to_owned();
    Ok(w)
}

/// The scheduler: sleeps until the next deadline (or a change), then prompts or fires.
pub async fn run(state: Core, wake: Arc<Notify>) {
    loop {
        let now = state.clock.now_ms();
        if let Err(e) = due(&state, now).await {
            tracing::error!(error = %e, "timer pass failed");
        }
        let next: Option<i64> = timers::Entity::find()
            .select_only()
            .column_as(timers::Column::DeadlineAt.min(), "next")
            .filter(timers::Column::Status.is_in([status::ACTIVE, status::GRACE]))
            .into_tuple::<Option<i64>>()
            .one(&state.db)
            .await
            .ok()
            .flatten()
            .flatten();
        // Sleep until the deadline; wake early when timers or the (test) clock change. A minute
        // at most, so a deadline set by another server sharing the database is not missed long.
        let wait = next.map_or(60_000, |t| (t - state.clock.now_ms()).clamp(0, 60_000)) as u64;
        if wait == 0 {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = wake.notified() => {}
            _ = state.clock.changed() => {}
        }
    }
}

async fn due(state: &Core, now: i64) -> Result<()> {
    let rows = timers::Entity::find()
        .filter(timers::Column::Status.is_in([status::ACTIVE, status::GRACE]))
        .filter(timers::Column::DeadlineAt.lte(now))
        .all(&state.db)
        .await?;
    for t in rows {
        if t.status == status::ACTIVE && t.grace_ms > 0 {
            prompt(state, &t, now).await?;
        } else {
            fire(state, &t, now).await?;
        }
    }
    Ok(())
}

/// The check-in prompts that stand for a person: timers in their grace period.
pub async fn prompts_for(state: &Core, user_id: &str) -> Result<Vec<PhoneServerMsg>> {
    Ok(timers::Entity::find()
        .filter(timers::Column::UserId.eq(user_id))
        .filter(timers::Column::Status.eq(status::GRACE))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|t| PhoneServerMsg::CheckInDue { timer_id: t.id, fires_at_ms: t.deadline_at })
        .collect())
}

/// Deadline reached: give the person the grace period to check in, and tell their phone.
async fn prompt(state: &Core, t: &timers::Model, now: i64) -> Result<()> {
    let fires_at = t.deadline_at + t.grace_ms;
    let res = timers::Entity::update_many()
        .col_expr(timers::Column::Status, status::GRACE.into())
        .col_expr(timers::Column::DeadlineAt, fires_at.into())
        .col_expr(timers::Column::UpdatedAt, now.into())
        .filter(timers::Column::Id.eq(t.id.clone()))
        .filter(timers::Column::Status.eq(status::ACTIVE))
        .filter(timers::Column::DeadlineAt.eq(t.deadline_at))
        .exec(&state.db)
        .await?;
    if res.rows_affected == 1 {
        tracing::info!(timer = %t.id, "check-in due; phone prompted");
        state.hub.tell_user(
            &t.user_id,
            &PhoneServerMsg::CheckInDue { timer_id: t.id.clone(), fires_at_ms: fires_at },
        );
    }
    Ok(())
}

/// Grace over: raise the alert. The status change and the alert commit together, and only the
/// transaction whose conditional update matched the row raises it.
async fn fire(state: &Core, t: &timers::Model, now: i64) -> Result<()> {
    let txn = crate::storage::write_txn(&state.db).await?;
    let row = alerts::new_alert(Raise {
        source: Source::Timer,
        user_id: &t.user_id,
        device_id: &t.device_id,
        client_id: &format!("timer:{}", t.id),
        audio_mime: None,
        reason: Some(Reason::MissedCheckIn { note: t.note.clone(), destination: t.destination.clone() }),
        duress: false,
    });
    let res = timers::Entity::update_many()
        .col_expr(timers::Column::Status, status::FIRED.into())
        .col_expr(timers::Column::AlertId, row.id.clone().into())
        .col_expr(timers::Column::UpdatedAt, now.into())
        .filter(timers::Column::Id.eq(t.id.clone()))
        .filter(timers::Column::Status.eq(t.status.clone()))
        .filter(timers::Column::DeadlineAt.lte(now))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Ok(()); // another server (or a check-in) got there first
    }
    let last = positions::last_known(&txn, &t.user_id).await?;
    alerts::raise_in(state, &txn, &row, last.as_ref()).await?;
    txn.commit().await?;
    tracing::warn!(timer = %t.id, alert = %row.id, "check-in missed; alert raised");
    alerts::raised(state, &row).await?;
    Ok(())
}
