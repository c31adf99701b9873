//! Operator commands: users (with a device token), contacts, responders, links, and `timer`.

pub mod demo;
pub mod timer;

use anyhow::{ensure, Context};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::domain::accounts;
use crate::config::DbArgs;
use crate::storage::{
    self,
    entity::{devices, responders, users},
};

/// `alertme user add`: creates the user if new, adds a device, prints its token once.
pub async fn user_add(name: &str, phone: &str, db: &DbArgs) -> anyhow::Result<()> {
    let phone = &crate::e164::normalize(phone)?;
    ensure!(!name.trim().is_empty() && name.len() <= 100, "name must be 1-100 characters");
    let conn = storage::connect(&db.url()).await?;
    let now = crate::now_ms();
    let user = match users::Entity::find().filter(users::Column::Phone.eq(phone)).one(&conn).await? {
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
    let token = accounts::new_token(accounts::DEVICE_PREFIX);
    devices::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user.id.clone()),
        label: Set("cli".into()),
        token_hash: Set(accounts::hash_token(&token)),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(&conn)
    .await?;
    eprintln!("user {} ({}) — device token (shown once, keep it secret):", user.name, user.id);
    println!("{token}");
    Ok(())
}

async fn user_by_phone(conn: &sea_orm::DatabaseConnection, phone: &str) -> anyhow::Result<users::Model> {
    let phone = crate::e164::normalize(phone)?;
    users::Entity::find()
        .filter(users::Column::Phone.eq(phone.clone()))
        .one(conn)
        .await?
        .with_context(|| format!("no user with phone {phone} (create one with `alertme user add`)"))
}

/// `alertme contact add`: the same rules and informational text as the API. The text goes out
/// when a server runs (the outbox is in the database).
pub async fn contact_add(user: &str, name: &str, phone: &str, db: &DbArgs) -> anyhow::Result<()> {
    let conn = storage::connect(&db.url()).await?;
    let u = user_by_phone(&conn, user).await?;
    let input =
        alertme_protocol::ContactInput { name: name.to_owned(), phone: phone.to_owned(), position: None };
    let (c, queued) = crate::domain::contacts::add(&conn, &u.id, input, &crate::e164::Countries::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}\t{}\t{}", c.id, c.name, c.phone);
    if !queued {
        eprintln!("note: {} opted out of texts earlier (replied STOP); they will not be texted", c.phone);
    }
    Ok(())
}

/// `alertme contact list`: one contact per line, in texting order.
pub async fn contact_list(user: &str, db: &DbArgs) -> anyhow::Result<()> {
    let conn = storage::connect(&db.url()).await?;
    let u = user_by_phone(&conn, user).await?;
    for c in crate::domain::contacts::list(&conn, &u.id).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        println!("{}\t{}\t{}\t{}", c.id, c.name, c.phone, if c.opted_out { "opted out" } else { "active" });
    }
    Ok(())
}

/// `alertme responder add`: creates a responder, prints the token once.
pub async fn responder_add(name: &str, db: &DbArgs) -> anyhow::Result<()> {
    ensure!(!name.trim().is_empty() && name.len() <= 100, "name must be 1-100 characters");
    let conn = storage::connect(&db.url()).await?;
    let token = accounts::new_token(accounts::RESPONDER_PREFIX);
    let r = responders::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set(name.trim().to_owned()),
        token_hash: Set(accounts::hash_token(&token)),
        created_at: Set(crate::now_ms()),
        revoked_at: Set(None),
    }
    .insert(&conn)
    .await?;
    eprintln!("responder {} ({}) — token (shown once, keep it secret):", r.name, r.id);
    println!("{token}");
    Ok(())
}

/// `alertme responder revoke`: the responder's token stops working; open consoles close within
/// seconds (running servers poll for revocations).
pub async fn responder_revoke(who: &str, db: &DbArgs) -> anyhow::Result<()> {
    let conn = storage::connect(&db.url()).await?;
    let id = crate::domain::links::revoke_responder(&conn, who).await.map_err(|e| match e {
        crate::error::Error::NotFound => anyhow::anyhow!("no active responder with id or name {who:?}"),
        e => anyhow::anyhow!("{e}"),
    })?;
    eprintln!("responder {id} revoked");
    Ok(())
}

/// `alertme link revoke`: an alert's watch link(s) stop working; open pages close within seconds.
pub async fn link_revoke(alert: &str, contact: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    let conn = storage::connect(&db.url()).await?;
    let which = contact.map_or(crate::domain::links::Which::All, |c| crate::domain::links::Which::Contact(c.to_owned()));
    let n = crate::domain::links::revoke_alert_links(&conn, alert, &which).await.map_err(|e| match e {
        crate::error::Error::NotFound => anyhow::anyhow!("no live watch link of alert {alert} matches"),
        e => anyhow::anyhow!("{e}"),
    })?;
    eprintln!("{} link(s) of alert {alert} revoked", n.len());
    Ok(())
}

/// `alertme bench-users`: many users with one device token each, for the load generator.
pub async fn bench_users(count: usize, db: &DbArgs) -> anyhow::Result<()> {
    let conn = storage::connect(&db.url()).await?;
    let now = crate::now_ms();
    let mut tokens = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut us = Vec::new();
        let mut ds = Vec::new();
        for &i in chunk {
            let uid = uuid::Uuid::now_v7().to_string();
            us.push(users::ActiveModel {
                id: Set(uid.clone()),
                name: Set(format!("Bench {i}")),
                phone: Set(format!("+49100{:08}", i)),
                created_at: Set(now),
            });
            let token = accounts::new_token(accounts::DEVICE_PREFIX);
            ds.push(devices::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                user_id: Set(uid),
                label: Set("bench".into()),
                token_hash: Set(accounts::hash_token(&token)),
                created_at: Set(now),
                revoked_at: Set(None),
            });
            tokens.push(token);
        }
        users::Entity::insert_many(us).exec_without_returning(&conn).await?;
        devices::Entity::insert_many(ds).exec_without_returning(&conn).await?;
    }
    for t in tokens {
        println!("{t}");
    }
    Ok(())
}
