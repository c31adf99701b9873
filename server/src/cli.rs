//! Operator commands: create users (with a device token) and responders.

use anyhow::{ensure, Context};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::auth;
use crate::config::DbArgs;
use crate::db::{
    self,
    entity::{devices, responders, users},
};

/// Checks an E.164 number: `+`, then 8 to 15 digits, no leading zero.
pub fn check_e164(phone: &str) -> anyhow::Result<()> {
    let digits = phone
        .strip_prefix('+')
        .context("phone must start with + (E.164, e.g. +4915112345678)")?;
    ensure!(
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0'),
        "phone must be + and 8-15 digits (E.164)"
    );
    Ok(())
}

/// `alertme user add`: creates the user if new, adds a device, prints its token once.
pub async fn user_add(name: &str, phone: &str, db: &DbArgs) -> anyhow::Result<()> {
    check_e164(phone)?;
    ensure!(
        !name.trim().is_empty() && name.len() <= 100,
        "name must be 1-100 characters"
    );
    let conn = db::connect(&db.url()).await?;
    let now = crate::now_ms();
    let user = match users::Entity::find()
        .filter(users::Column::Phone.eq(phone))
        .one(&conn)
        .await?
    {
        Some(u) => u,
        None => {
            users::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                name: Set(name.trim().to_owned()),
                phone: Set(phone.to_owned()),
                created_at: Set(now),
            }
            .insert(&conn)
            .await?
        }
    };
    let token = auth::new_token(auth::DEVICE_PREFIX);
    devices::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user.id.clone()),
        label: Set("cli".into()),
        token_hash: Set(auth::hash_token(&token)),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(&conn)
    .await?;
    eprintln!(
        "user {} ({}) — device token (shown once, keep it secret):",
        user.name, user.id
    );
    println!("{token}");
    Ok(())
}

/// `alertme responder add`: creates a responder, prints the token once.
pub async fn responder_add(name: &str, db: &DbArgs) -> anyhow::Result<()> {
    ensure!(
        !name.trim().is_empty() && name.len() <= 100,
        "name must be 1-100 characters"
    );
    let conn = db::connect(&db.url()).await?;
    let token = auth::new_token(auth::RESPONDER_PREFIX);
    let r = responders::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set(name.trim().to_owned()),
        token_hash: Set(auth::hash_token(&token)),
        created_at: Set(crate::now_ms()),
        revoked_at: Set(None),
    }
    .insert(&conn)
    .await?;
    eprintln!(
        "responder {} ({}) — token (shown once, keep it secret):",
        r.name, r.id
    );
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn e164() {
        assert!(super::check_e164("+4915112345678").is_ok());
        assert!(super::check_e164("015112345678").is_err());
        assert!(super::check_e164("+49 151").is_err());
        assert!(super::check_e164("+0123456789").is_err());
    }
}
