//! Emergency contacts: who gets texted when a person raises an alert.

use alertme_protocol::{Contact, ContactInput};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::e164::Countries;
use crate::error::{Error, Result};
use crate::storage::entity::{contacts, sms_outbox, users};
use crate::storage::outbox::{self, kind, status, NewText};
use crate::storage::Db;

/// Most contacts per person ([`alertme_protocol::MAX_CONTACTS`], as a row count).
pub const MAX_CONTACTS: u64 = alertme_protocol::MAX_CONTACTS as u64;

fn wire(c: contacts::Model) -> Contact {
    Contact {
        id: c.id,
        name: c.name,
        phone: c.phone,
        position: c.position,
        opted_out: c.opted_out_at.is_some(),
        language: c.language,
    }
}

/// A user's contacts in texting order.
pub async fn list(db: &DatabaseConnection, user_id: &str) -> Result<Vec<Contact>> {
    Ok(contacts::Entity::find()
        .filter(contacts::Column::UserId.eq(user_id))
        .order_by_asc(contacts::Column::Position)
        .order_by_asc(contacts::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(wire)
        .collect())
}

/// "You were added as a contact" texts a person can cause per hour: enough to set up
/// [`MAX_CONTACTS`] and replace each once, too few to text strangers by adding and removing them.
pub const NOTICES_PER_HOUR: u64 = 2 * MAX_CONTACTS;

/// A number told it was added within this long is not told again (removed and added back).
const NOTICE_AGAIN_AFTER_MS: i64 = 24 * 3_600_000;

/// Adds a contact and queues the informational text that tells them so (and how to opt out).
/// Returns the contact and whether an outbox row was queued.
pub async fn add(
    db: &DatabaseConnection,
    secret: &[u8],
    user_id: &str,
    input: ContactInput,
    countries: &Countries,
) -> Result<(Contact, bool)> {
    let name = crate::domain::accounts::check_name(&input.name)?;
    let phone = countries.textable(&input.phone)?;
    refuse_forgotten(db, secret, &phone).await?;
    let language = crate::domain::wording::checked(input.language.as_deref())?;
    let txn = crate::storage::write_txn(db).await?;
    // Locked (PostgreSQL; SQLite's write transaction is exclusive anyway), so that parallel adds
    // of one person count the texts below one after another.
    let user = users::Entity::find_by_id(user_id.to_owned())
        .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound)?;
    if user.phone == phone {
        return Err(Error::BadRequest("your own number cannot be your emergency contact".into()));
    }
    let count = contacts::Entity::find().filter(contacts::Column::UserId.eq(user_id)).count(&txn).await?;
    if count >= MAX_CONTACTS {
        return Err(Error::Conflict(format!("at most {MAX_CONTACTS} contacts")));
    }
    let exists = contacts::Entity::find()
        .filter(contacts::Column::UserId.eq(user_id))
        .filter(contacts::Column::Phone.eq(phone.clone()))
        .one(&txn)
        .await?;
    if exists.is_some() {
        return Err(Error::Conflict("this number is already one of your contacts".into()));
    }
    // Someone who replied STOP to us stays opted out, whoever adds them.
    let opted_out = contacts::Entity::find()
        .filter(contacts::Column::Phone.eq(phone.clone()))
        .filter(contacts::Column::OptedOutAt.is_not_null())
        .one(&txn)
        .await?
        .and_then(|c| c.opted_out_at);
    let now = crate::now_ms();
    let row = contacts::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user_id.to_owned()),
        name: Set(name.clone()),
        phone: Set(phone.clone()),
        position: Set(input.position.unwrap_or(count as i32)),
        opted_out_at: Set(opted_out),
        created_at: Set(now),
        language: Set(language.map(str::to_owned)),
    }
    .insert(&txn)
    .await?;
    let told_recently = sms_outbox::Entity::find()
        .filter(sms_outbox::Column::UserId.eq(user_id))
        .filter(sms_outbox::Column::Kind.eq(kind::CONTACT_ADDED))
        .filter(sms_outbox::Column::ToPhone.eq(phone.clone()))
        .filter(sms_outbox::Column::CreatedAt.gte(now - NOTICE_AGAIN_AFTER_MS))
        .count(&txn)
        .await?
        > 0;
    let queued = opted_out.is_none() && !told_recently;
    if queued
        && outbox::sent_for(&txn, user_id, &[kind::CONTACT_ADDED], now - 3_600_000).await? >= NOTICES_PER_HOUR
    {
        return Err(Error::RateLimited);
    }
    if queued {
        let body = crate::domain::notify::contact_added_text(language.unwrap_or(&user.language), &user.name);
        let text = NewText {
            kind: kind::CONTACT_ADDED,
            contact_id: Some(&row.id),
            user_id: Some(user_id),
            to: &phone,
            body: Some(body),
            ..Default::default()
        };
        outbox::enqueue(&txn, text).await?;
    }
    txn.commit().await?;
    Ok((wire(row), queued))
}

/// A number whose owner replied FORGET is never anyone's contact again.
async fn refuse_forgotten(db: &DatabaseConnection, secret: &[u8], phone: &str) -> Result<()> {
    if crate::domain::erasure::is_forgotten(db, secret, phone).await? {
        return Err(Error::Conflict(
            "the owner of this number asked AlertMe to forget it: it cannot be added".into(),
        ));
    }
    Ok(())
}

/// Changes a contact's name, number or order.
pub async fn update(
    db: &DatabaseConnection,
    secret: &[u8],
    user_id: &str,
    id: &str,
    input: ContactInput,
    countries: &Countries,
) -> Result<Contact> {
    let name = crate::domain::accounts::check_name(&input.name)?;
    let phone = countries.textable(&input.phone)?;
    refuse_forgotten(db, secret, &phone).await?;
    let language = crate::domain::wording::checked(input.language.as_deref())?;
    let row = contacts::Entity::find_by_id(id.to_owned())
        .filter(contacts::Column::UserId.eq(user_id))
        .one(db)
        .await?
        .ok_or(Error::NotFound)?;
    let taken = contacts::Entity::find()
        .filter(contacts::Column::UserId.eq(user_id))
        .filter(contacts::Column::Phone.eq(phone.clone()))
        .filter(contacts::Column::Id.ne(id))
        .one(db)
        .await?;
    if taken.is_some() {
        return Err(Error::Conflict("this number is already one of your contacts".into()));
    }
    let position = input.position.unwrap_or(row.position);
    let mut am: contacts::ActiveModel = row.into();
    am.name = Set(name);
    am.phone = Set(phone);
    am.position = Set(position);
    am.language = Set(language.map(str::to_owned));
    Ok(wire(am.update(db).await?))
}

/// Removes a contact and revokes every watch link they were texted (texts already sent stay in
/// the delivery record). Returns the revoked links' hashes, whose open sockets must close.
pub async fn remove(db: &DatabaseConnection, user_id: &str, id: &str) -> Result<Vec<String>> {
    let txn = crate::storage::write_txn(db).await?;
    let res = contacts::Entity::delete_many()
        .filter(contacts::Column::Id.eq(id))
        .filter(contacts::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    let revoked = crate::domain::links::revoke_contact_links(&txn, id).await?;
    txn.commit().await?;
    Ok(revoked)
}

/// A reply of STOP from `phone`: no more texts to it from anyone's alerts, pending ones included
/// (codes aside: a person signing in with that number still gets theirs).
pub async fn opt_out(db: &Db, phone: &str) -> Result<()> {
    let now = crate::now_ms();
    contacts::Entity::update_many()
        .col_expr(contacts::Column::OptedOutAt, now.into())
        .filter(contacts::Column::Phone.eq(phone))
        .filter(contacts::Column::OptedOutAt.is_null())
        .exec(db)
        .await?;
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, status::OPTED_OUT.into())
        .col_expr(sms_outbox::Column::UpdatedAt, now.into())
        .filter(sms_outbox::Column::ToPhone.eq(phone))
        .filter(sms_outbox::Column::Status.eq(status::PENDING))
        .filter(sms_outbox::Column::Kind.ne(kind::CODE))
        .exec(db)
        .await?;
    Ok(())
}

/// A reply of START from `phone`: texts to it resume.
pub async fn opt_in(db: &Db, phone: &str) -> Result<()> {
    contacts::Entity::update_many()
        .col_expr(contacts::Column::OptedOutAt, Option::<i64>::None.into())
        .filter(contacts::Column::Phone.eq(phone))
        .exec(db)
        .await?;
    Ok(())
}
