//! Tokens: random bearer secrets stored only as SHA-256 hashes, and watch tokens derived per alert.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::storage::entity::{devices, responders, watch_tokens};

/// A watch link as stored (by the hash of its token).
pub use crate::storage::entity::watch_tokens::Model as WatchLink;

/// Prefix of device tokens (phones).
pub const DEVICE_PREFIX: &str = "amd_";
/// Prefix of responder tokens.
pub const RESPONDER_PREFIX: &str = "amr_";
/// Prefix of watch tokens.
pub const WATCH_PREFIX: &str = "amw_";

/// A new random token: prefix + 256 bits, URL-safe.
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

/// What is stored for a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// HMAC-SHA-256 under the server secret of `domain`, then each of `parts`, NUL-separated. The
/// domain (`alertme-watch-v1`, …) keeps one use's values from ever matching another's; the one
/// place the server derives or hashes with its secret.
pub fn keyed_hash(secret: &[u8], domain: &str, parts: &[&str]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(domain.as_bytes());
    for p in parts {
        mac.update(b"\0");
        mac.update(p.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// Derives an alert's watch token for `label` from the server secret, so the server can hand the
/// same link out again (e.g. to a phone resuming its alert) while storing only its hash.
pub fn watch_token(secret: &[u8], alert_id: &str, label: &str) -> String {
    let mac = keyed_hash(secret, "alertme-watch-v1", &[alert_id, label]);
    format!("{WATCH_PREFIX}{}", URL_SAFE_NO_PAD.encode(mac))
}

/// A phone's identity.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Owner.
    pub user_id: String,
}

/// A responder's identity.
#[derive(Debug, Clone)]
pub struct Responder {
    /// Responder id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// Resolves a device token.
pub async fn device(db: &DatabaseConnection, token: &str) -> Result<Device> {
    if !token.starts_with(DEVICE_PREFIX) {
        return Err(Error::Unauthorized);
    }
    let row = devices::Entity::find()
        .filter(devices::Column::TokenHash.eq(hash_token(token)))
        .filter(devices::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Device { id: row.id, user_id: row.user_id })
}

/// Resolves a responder token.
pub async fn responder(db: &DatabaseConnection, token: &str) -> Result<Responder> {
    if !token.starts_with(RESPONDER_PREFIX) {
        return Err(Error::Unauthorized);
    }
    let row = responders::Entity::find()
        .filter(responders::Column::TokenHash.eq(hash_token(token)))
        .filter(responders::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Responder { id: row.id, name: row.name })
}

/// Resolves a watch token to its row (alert, label, first opened).
pub async fn watch_row(db: &DatabaseConnection, token: &str) -> Result<watch_tokens::Model> {
    if !token.starts_with(WATCH_PREFIX) {
        return Err(Error::Unauthorized);
    }
    watch_tokens::Entity::find_by_id(hash_token(token))
        .filter(watch_tokens::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .ok_or(Error::Unauthorized)
}

/// Loads the server secret from config, or from (or into) `DATA_DIR/secret.key`.
pub fn load_secret(configured: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    if let Some(s) = configured {
        anyhow::ensure!(s.len() >= 16, "ALERTME_SECRET must be at least 16 characters");
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("secret.key");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = new_token("");
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_tokens_are_stable_per_label_and_distinct_across() {
        let a = watch_token(b"0123456789abcdef", "alert1", "device");
        assert_eq!(a, watch_token(b"0123456789abcdef", "alert1", "device"));
        assert_ne!(a, watch_token(b"0123456789abcdef", "alert1", "contact:1"));
        assert_ne!(a, watch_token(b"0123456789abcdeX", "alert1", "device"));
        assert!(a.len() > 40 && a.starts_with(WATCH_PREFIX));
    }

    #[test]
    fn keyed_hash_is_the_layout_stored_values_were_made_with() {
        // Links, codes and PINs stored by earlier versions must still match.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(b"alertme-watch-v1\0alert1\0device");
        let before: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(keyed_hash(b"0123456789abcdef", "alertme-watch-v1", &["alert1", "device"]), before);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let t = new_token(DEVICE_PREFIX);
        assert_ne!(t, new_token(DEVICE_PREFIX));
        assert_eq!(hash_token(&t).len(), 64);
    }
}

/// A person's devices, oldest first.
pub async fn devices_of(db: &DatabaseConnection, user_id: &str) -> Result<Vec<devices::Model>> {
    use sea_orm::QueryOrder;
    Ok(devices::Entity::find()
        .filter(devices::Column::UserId.eq(user_id))
        .order_by_asc(devices::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Revokes one of a person's devices; `NotFound` when it is not theirs or already revoked.
/// The caller closes its live sockets.
pub async fn revoke_device(db: &DatabaseConnection, user_id: &str, device_id: &str) -> Result<()> {
    let res = devices::Entity::update_many()
        .col_expr(devices::Column::RevokedAt, crate::now_ms().into())
        .filter(devices::Column::Id.eq(device_id))
        .filter(devices::Column::UserId.eq(user_id))
        .filter(devices::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// A person as stored.
pub use crate::storage::entity::users::Model as User;

/// The person with this (normalized) phone number, if any.
pub async fn user_by_phone<C: sea_orm::ConnectionTrait>(db: &C, phone: &str) -> Result<Option<User>> {
    use crate::storage::entity::users;
    Ok(users::Entity::find().filter(users::Column::Phone.eq(phone)).one(db).await?)
}

/// The person with this phone number, created with `name` if new. Users, devices and
/// responders are built here only, whoever asks (sign-in, the CLI, the demo).
pub async fn user_for_phone<C: sea_orm::ConnectionTrait>(
    db: &C,
    name: &str,
    phone: &str,
    language: Option<&str>,
) -> Result<User> {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    if let Some(u) = user_by_phone(db, phone).await? {
        return Ok(u);
    }
    let name = check_name(name)?;
    let language = crate::domain::wording::checked(language)?.unwrap_or(crate::domain::wording::LANGUAGES[0]);
    Ok(crate::storage::entity::users::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set(name),
        phone: Set(phone.to_owned()),
        created_at: Set(crate::now_ms()),
        language: Set(language.to_owned()),
        erased_at: Set(None),
    }
    .insert(db)
    .await?)
}

/// A new device of a person; returns its id and its token (shown once, stored hashed).
pub async fn add_device<C: sea_orm::ConnectionTrait>(
    db: &C,
    user_id: &str,
    label: &str,
) -> Result<(String, String)> {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let token = new_token(DEVICE_PREFIX);
    let device = devices::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user_id.to_owned()),
        label: Set(label.chars().take(100).collect()),
        token_hash: Set(hash_token(&token)),
        created_at: Set(crate::now_ms()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok((device.id, token))
}

/// A person's name (a user's, a contact's, a responder's) trimmed, or why it cannot be one.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > alertme_protocol::MAX_NAME_CHARS {
        let max = alertme_protocol::MAX_NAME_CHARS;
        return Err(Error::BadRequest(format!("name must be 1 to {max} characters")));
    }
    Ok(name.to_owned())
}

/// A new responder; returns its id and its token (shown once, stored hashed).
pub async fn add_responder(db: &DatabaseConnection, name: &str) -> Result<(String, String)> {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let name = check_name(name)?;
    let token = new_token(RESPONDER_PREFIX);
    let r = responders::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set(name),
        token_hash: Set(hash_token(&token)),
        created_at: Set(crate::now_ms()),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok((r.id, token))
}

/// `count` people with one device each (load tests), written 200 at a time; returns the
/// device tokens.
pub async fn add_many(db: &DatabaseConnection, count: usize) -> Result<Vec<String>> {
    use crate::storage::entity::users;
    use sea_orm::ActiveValue::Set;
    let now = crate::now_ms();
    let mut tokens = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let (mut us, mut ds) = (Vec::new(), Vec::new());
        for &i in chunk {
            let uid = uuid::Uuid::now_v7().to_string();
            us.push(users::ActiveModel {
                id: Set(uid.clone()),
                name: Set(format!("Bench {i}")),
                phone: Set(format!("+49100{i:08}")),
                created_at: Set(now),
                language: Set("en".into()),
                erased_at: Set(None),
            });
            let token = new_token(DEVICE_PREFIX);
            ds.push(devices::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                user_id: Set(uid),
                label: Set("bench".into()),
                token_hash: Set(hash_token(&token)),
                created_at: Set(now),
                revoked_at: Set(None),
            });
            tokens.push(token);
        }
        users::Entity::insert_many(us).exec_without_returning(db).await?;
        devices::Entity::insert_many(ds).exec_without_returning(db).await?;
    }
    Ok(tokens)
}
