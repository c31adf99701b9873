//! Operator commands: users (with a device token), contacts, responders, links, and `timer`.

pub mod demo;
pub mod evidence;
pub mod timer;

use anyhow::Context;

use crate::config::DbArgs;
use crate::domain::{accounts, contacts, links, Db};
use crate::error::Error;

/// The database a command works on (connected and migrated).
async fn connect(db: &DbArgs) -> anyhow::Result<Db> {
    crate::storage::connect(&db.url()).await
}

/// A domain error as an operator reads it.
fn plain(e: Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// `alertme user add`: creates the user if new, adds a device, prints its token once.
pub async fn user_add(name: &str, phone: &str, language: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    let phone = &crate::e164::normalize(phone)?;
    let language = crate::domain::wording::checked(language).map_err(plain)?;
    let conn = connect(db).await?;
    let user = accounts::user_for_phone(&conn, name, phone, language).await.map_err(plain)?;
    let (_, token) = accounts::add_device(&conn, &user.id, "cli").await.map_err(plain)?;
    eprintln!("user {} ({}) — device token (shown once, keep it secret):", user.name, user.id);
    println!("{token}");
    Ok(())
}

/// `alertme user erase`: the person's account and data, confirmed with their PIN.
pub async fn user_erase(phone: &str, pin: &str, secret: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    let user = user_by_phone(&conn, phone).await?;
    let secret = accounts::load_secret(secret, &db.data_dir)?;
    match crate::domain::pins::pin_kind(&conn, &secret, &user.id, pin).await.map_err(plain)? {
        crate::domain::pins::PinKind::Normal => {}
        // The same words as for a wrong PIN: whoever stands beside the screen learns nothing.
        crate::domain::pins::PinKind::Duress => return Err(plain(crate::error::Error::Forbidden)),
    }
    let (erased, _) = crate::domain::erasure::erase_user_in(&conn, &user.id).await.map_err(plain)?;
    eprintln!("erased: {} alert(s) deleted, {} kept on legal hold or live", erased.alerts, erased.held);
    Ok(())
}

async fn user_by_phone(conn: &Db, phone: &str) -> anyhow::Result<accounts::User> {
    let phone = crate::e164::normalize(phone)?;
    accounts::user_by_phone(conn, &phone)
        .await
        .map_err(plain)?
        .with_context(|| format!("no user with phone {phone} (create one with `alertme user add`)"))
}

/// `alertme contact add`: the same rules and informational text as the API. The text goes out
/// when a server runs (the outbox is in the database).
pub async fn contact_add(
    user: &str,
    name: &str,
    phone: &str,
    language: Option<&str>,
    db: &DbArgs,
) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    let u = user_by_phone(&conn, user).await?;
    let input = alertme_protocol::ContactInput {
        name: name.to_owned(),
        phone: phone.to_owned(),
        position: None,
        language: language.map(str::to_owned),
    };
    let secret = accounts::load_secret(std::env::var("ALERTME_SECRET").ok().as_deref(), &db.data_dir)?;
    let (c, queued) = contacts::add(&conn, &secret, &u.id, input, &crate::e164::Countries::default())
        .await
        .map_err(plain)?;
    println!("{}\t{}\t{}", c.id, c.name, c.phone);
    if !queued {
        eprintln!("note: {} opted out of texts earlier (replied STOP); they will not be texted", c.phone);
    }
    Ok(())
}

/// `alertme contact list`: one contact per line, in texting order.
pub async fn contact_list(user: &str, db: &DbArgs) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    let u = user_by_phone(&conn, user).await?;
    for c in contacts::list(&conn, &u.id).await.map_err(plain)? {
        println!("{}\t{}\t{}\t{}", c.id, c.name, c.phone, if c.opted_out { "opted out" } else { "active" });
    }
    Ok(())
}

/// `alertme responder add`: creates a responder, prints the token once.
pub async fn responder_add(name: &str, db: &DbArgs) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    let (id, token) = accounts::add_responder(&conn, name).await.map_err(plain)?;
    eprintln!("responder {} ({id}) — token (shown once, keep it secret):", name.trim());
    println!("{token}");
    Ok(())
}

/// `alertme responder revoke`: the responder's token stops working; open consoles close within
/// seconds (running servers poll for revocations).
pub async fn responder_revoke(who: &str, db: &DbArgs) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    let id = links::revoke_responder(&conn, who).await.map_err(|e| match e {
        Error::NotFound => anyhow::anyhow!("no active responder with id or name {who:?}"),
        e => plain(e),
    })?;
    eprintln!("responder {id} revoked");
    Ok(())
}

/// `alertme link revoke`: an alert's watch link(s) stop working; open pages close within seconds.
pub async fn link_revoke(alert: &str, contact: Option<&str>, db: &DbArgs) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    let which = contact.map_or(links::Which::All, |c| links::Which::Contact(c.to_owned()));
    let n = links::revoke_alert_links(&conn, alert, &which).await.map_err(|e| match e {
        Error::NotFound => anyhow::anyhow!("no live watch link of alert {alert} matches"),
        e => plain(e),
    })?;
    eprintln!("{} link(s) of alert {alert} revoked", n.len());
    Ok(())
}

/// `alertme bench-users`: many users with one device token each, for the load generator.
pub async fn bench_users(count: usize, db: &DbArgs) -> anyhow::Result<()> {
    let conn = connect(db).await?;
    for t in accounts::add_many(&conn, count).await.map_err(plain)? {
        println!("{t}");
    }
    Ok(())
}
