//! Withdrawing access: watch links revoked (one contact's, or all of an alert's), responders
//! revoked, and the poller that tells this server's sockets about revocations made elsewhere.
//!
//! Every revocation is a `revoked_at` in the database first; the sockets using it are then told
//! through the hub and close with 4401. A revocation made by another process (the `alertme` CLI,
//! another server on the same database) reaches the sockets through [`watch_revocations`].

use std::time::Duration;

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::{Error, Result};
use crate::live::{Hub, Revoked};
use crate::storage::entity::{devices, responders, watch_tokens};
use crate::storage::outbox::contact_label;

/// Which of an alert's links to revoke.
#[derive(Debug, Clone)]
pub enum Which {
    /// The link texted to this contact.
    Contact(String),
    /// Every link of the alert (contacts' and the phone's own).
    All,
}

/// Revokes links in the database; returns the hashes of the links that were live.
async fn revoke_where<C: ConnectionTrait>(db: &C, cond: sea_orm::Condition) -> Result<Vec<String>> {
    let live: Vec<String> = watch_tokens::Entity::find()
        .filter(cond.clone())
        .filter(watch_tokens::Column::RevokedAt.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.token_hash)
        .collect();
    if live.is_empty() {
        return Ok(live);
    }
    watch_tokens::Entity::update_many()
        .col_expr(watch_tokens::Column::RevokedAt, crate::now_ms().into())
        .filter(watch_tokens::Column::TokenHash.is_in(live.clone()))
        .filter(watch_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(live)
}

/// Revokes an alert's link(s); `NotFound` when there was no live link to revoke.
pub async fn revoke_alert_links<C: ConnectionTrait>(
    db: &C,
    alert_id: &str,
    which: &Which,
) -> Result<Vec<String>> {
    let mut cond = sea_orm::Condition::all().add(watch_tokens::Column::AlertId.eq(alert_id));
    if let Which::Contact(id) = which {
        cond = cond.add(watch_tokens::Column::Label.eq(contact_label(id)));
    }
    let hashes = revoke_where(db, cond).await?;
    if hashes.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(hashes)
}

/// Revokes every link ever texted to a contact (they were removed from the person's contacts).
pub async fn revoke_contact_links<C: ConnectionTrait>(db: &C, contact_id: &str) -> Result<Vec<String>> {
    revoke_where(db, sea_orm::Condition::all().add(watch_tokens::Column::Label.eq(contact_label(contact_id))))
        .await
}

/// Closes this server's sockets that use the given links.
pub fn close_links(hub: &Hub, hashes: Vec<String>) {
    for h in hashes {
        hub.revoke(Revoked::Watch(h));
    }
}

/// Revokes a responder by id or exact name; returns their id.
pub async fn revoke_responder(db: &DatabaseConnection, who: &str) -> Result<String> {
    let found = responders::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(responders::Column::Id.eq(who))
                .add(responders::Column::Name.eq(who)),
        )
        .filter(responders::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    let [row] = found.as_slice() else {
        return Err(if found.is_empty() {
            Error::NotFound
        } else {
            Error::Conflict(format!("{} active responders are named {who:?}: give the id", found.len()))
        });
    };
    responders::Entity::update_many()
        .col_expr(responders::Column::RevokedAt, crate::now_ms().into())
        .filter(responders::Column::Id.eq(row.id.clone()))
        .exec(db)
        .await?;
    Ok(row.id.clone())
}

/// Whether a credential still stands, read from the database: for a socket that missed
/// revocation news (its feed lagged). Gone or revoked: no. A database error: yes, for now (the
/// poller and the next lag check again; an SOS stream is not cut over a hiccup).
pub async fn still_valid(db: &DatabaseConnection, who: &Revoked) -> bool {
    let revoked_at = match who {
        Revoked::Device(id) => {
            devices::Entity::find_by_id(id.clone()).one(db).await.map(|r| r.map(|r| r.revoked_at))
        }
        Revoked::Watch(hash) => {
            watch_tokens::Entity::find_by_id(hash.clone()).one(db).await.map(|r| r.map(|r| r.revoked_at))
        }
        Revoked::Responder(id) => {
            responders::Entity::find_by_id(id.clone()).one(db).await.map(|r| r.map(|r| r.revoked_at))
        }
    };
    !matches!(revoked_at, Ok(Some(Some(_)) | None))
}

/// How far back each poll looks, beyond the previous one: revocations committed by another
/// process while this one polled are still seen (telling a socket twice is harmless).
const POLL_OVERLAP_MS: i64 = 5_000;

/// Tells this server's sockets about credentials revoked by other processes, every `period`.
pub async fn watch_revocations(hub: Hub, db: DatabaseConnection, period: Duration) {
    let mut since = crate::now_ms();
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let now = crate::now_ms();
        match revoked_since(&db, since - POLL_OVERLAP_MS).await {
            Ok(list) => {
                for r in list {
                    hub.revoke(r);
                }
                since = now;
            }
            Err(e) => tracing::warn!(error = %e, "polling revocations failed; retrying"),
        }
    }
}

async fn revoked_since(db: &DatabaseConnection, since: i64) -> Result<Vec<Revoked>> {
    let mut out: Vec<Revoked> = watch_tokens::Entity::find()
        .filter(watch_tokens::Column::RevokedAt.gte(since))
        .all(db)
        .await?
        .into_iter()
        .map(|t| Revoked::Watch(t.token_hash))
        .collect();
    out.extend(
        responders::Entity::find()
            .filter(responders::Column::RevokedAt.gte(since))
            .all(db)
            .await?
            .into_iter()
            .map(|r| Revoked::Responder(r.id)),
    );
    out.extend(
        devices::Entity::find()
            .filter(devices::Column::RevokedAt.gte(since))
            .all(db)
            .await?
            .into_iter()
            .map(|d| Revoked::Device(d.id)),
    );
    Ok(out)
}

/// A watch link that still works: not revoked, and its alert not ended longer ago than
/// `ALERTME_LINK_TTL_SECS`. Returns the link's row and its alert.
pub async fn open(
    core: &crate::domain::Core,
    token: &str,
) -> Result<(crate::domain::accounts::WatchLink, crate::domain::alerts::Alert)> {
    let row = crate::domain::accounts::watch_row(&core.db, token).await?;
    let alert = crate::domain::alerts::find(&core.db, &row.alert_id).await?.ok_or(Error::NotFound)?;
    let ttl = core.settings.link_ttl;
    if alert.ended_at.is_some_and(|t| crate::now_ms() > t.saturating_add(ttl.as_millis() as i64)) {
        return Err(Error::LinkExpired);
    }
    Ok((row, alert))
}

/// Records the first time a contact opened their link, so the person and responders see it.
pub async fn mark_opened(
    core: &crate::domain::Core,
    link: &crate::domain::accounts::WatchLink,
) -> Result<()> {
    let res = watch_tokens::Entity::update_many()
        .col_expr(watch_tokens::Column::FirstOpenedAt, crate::now_ms().into())
        .filter(watch_tokens::Column::TokenHash.eq(link.token_hash.clone()))
        .filter(watch_tokens::Column::FirstOpenedAt.is_null())
        .exec(&core.db)
        .await?;
    if res.rows_affected > 0 {
        crate::domain::notify::refresh(core, &link.alert_id).await;
    }
    Ok(())
}
