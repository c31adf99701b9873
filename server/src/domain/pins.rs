//! PINs: the person's own, which ends an alert or a check-in, and the duress PIN, which seems to.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use subtle::ConstantTimeEq;

use crate::domain::accounts::Device;
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::storage::entity::user_pins;

/// What a PIN turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKind {
    /// The person's PIN.
    Normal,
    /// The duress PIN: act normal, raise a silent alert.
    Duress,
}

fn pin_hash(secret: &[u8], user_id: &str, pin: &str) -> String {
    hex::encode(crate::domain::accounts::keyed_hash(secret, "alertme-pin-v1", &[user_id, pin]))
}

fn check_pin_format(pin: &str) -> Result<()> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::BadRequest("a PIN is 4 to 8 digits".into()))
    }
}

/// Sets the person's PIN and optional duress PIN (keyed hashes; never stored in clear).
pub async fn set_pin(state: &Core, device: &Device, pin: &str, duress: Option<&str>) -> Result<()> {
    check_pin_format(pin)?;
    if let Some(d) = duress {
        check_pin_format(d)?;
        if d == pin {
            return Err(Error::BadRequest("the duress PIN must differ from the PIN".into()));
        }
    }
    let row = user_pins::ActiveModel {
        user_id: Set(device.user_id.clone()),
        pin_hash: Set(pin_hash(&state.secret, &device.user_id, pin)),
        duress_pin_hash: Set(duress.map(|d| pin_hash(&state.secret, &device.user_id, d))),
        updated_at: Set(crate::now_ms()),
    };
    user_pins::Entity::delete_by_id(device.user_id.clone()).exec(&state.db).await?;
    row.insert(&state.db).await?;
    Ok(())
}

/// Which PIN this is (the answer must not differ to the caller); entries are rate limited.
pub async fn check_pin(state: &Core, user_id: &str, pin: &str) -> Result<PinKind> {
    if !state.guard.allow_pin(user_id) {
        return Err(Error::RateLimited);
    }
    pin_kind(&state.db, &state.secret, user_id, pin).await
}

/// Which PIN this is, without the rate limit (the operator's command line, where the person
/// stands beside them).
pub async fn pin_kind(db: &crate::domain::Db, secret: &[u8], user_id: &str, pin: &str) -> Result<PinKind> {
    let row = user_pins::Entity::find_by_id(user_id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| Error::Conflict("set a PIN first (PUT /v1/pin)".into()))?;
    let h = pin_hash(secret, user_id, pin.trim());
    // Both compared, in constant time: neither the timing nor the order betrays which PIN
    // (or how much of one) was right.
    let normal = bool::from(h.as_bytes().ct_eq(row.pin_hash.as_bytes()));
    let duress = row.duress_pin_hash.as_deref().is_some_and(|d| bool::from(h.as_bytes().ct_eq(d.as_bytes())));
    match (normal, duress) {
        (true, _) => Ok(PinKind::Normal),
        (false, true) => Ok(PinKind::Duress),
        (false, false) => Err(Error::Forbidden),
    }
}
