//! Tokens: random bearer secrets stored only as SHA-256 hashes, and watch tokens derived per alert.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::storage::entity::{devices, responders, watch_tokens};
use crate::error::{Error, Result};

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
