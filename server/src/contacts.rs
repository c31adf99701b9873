//! Emergency contacts: who gets texted when a person raises an alert.

use alertme_protocol::{Contact, ContactInput};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};

use crate::db::entity::{contacts, users};
use crate::error::{Error, Result};
use crate::sms::outbox::{self, kind};

/// Most contacts per person: enough for family and friends, few enough that one SOS cannot be
/// turned into a bulk-texting tool.
pub const MAX_CONTACTS: u64 = 10;

fn wire(c: contacts::Model) -> Contact {
    Contact {
        id: c.id,
        name: c.name,
        phone: c.phone,
        position: c.position,
        opted_out: c.opted_out_at.is_some(),
    }
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::BadRequest("name must be 1 to 100 characters".into()));
    }
    Ok(name.to_owned())
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

/// Adds a contact and queues the informational text that tells them so (and how to opt out).
/// Returns the contact and whether an outbox row was queued.
pub async fn add(db: &DatabaseConnection, user_id: &str, input: ContactInput) -> Result<(Contact, bool)> {
    let name = check_name(&input.name)?;
    let phone = crate::e164::normalize(&input.phone)?;
    let txn = crate::db::write_txn(db).await?;
    let user = users::Entity::find_by_id(user_id.to_owned()).one(&txn).await?.ok_or(Error::NotFound)?;
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
    }
    .insert(&txn)
    .await?;
    let queued = opted_out.is_none();
    if queued {
        let body = format!(
            "{} added you as an emergency contact on AlertMe. If they ever need help, you will get a text \
             with a link to see where they are. Reply STOP to opt out.",
            user.name
        );
        outbox::enqueue(&txn, kind::CONTACT_ADDED, None, Some(&row.id), &phone, Some(body)).await?;
    }
    txn.commit().await?;
    Ok((wire(row), queued))
}

/// Changes a contact's name, number or order.
pub async fn update(
    db: &DatabaseConnection,
    user_id: &str,
    id: &str,
    input: ContactInput,
) -> Result<Contact> {
    let name = check_name(&input.name)?;
    let phone = crate::e164::normalize(&input.phone)?;
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
    Ok(wire(am.update(db).await?))
}

/// Removes a contact (texts already sent stay in the delivery record).
pub async fn remove(db: &DatabaseConnection, user_id: &str, id: &str) -> Result<()> {
    let res = contacts::Entity::delete_many()
        .filter(contacts::Column::Id.eq(id))
        .filter(contacts::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
