//! Phone-number registration with SMS codes: request a code, verify it, get a device token.

use std::net::IpAddr;

use alertme_protocol::{VerifyRequest, VerifyResponse};
use rand::Rng;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::domain::accounts;
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::storage::entity::verifications;
use crate::storage::outbox::{self, kind, NewText};

/// Wrong guesses after which a code is dead.
pub const MAX_TRIES: i32 = 5;

/// Keyed hash of a code: a stolen database does not reveal live codes, and a 6-digit code
/// cannot be brute-forced offline without the server secret.
fn code_hash(secret: &[u8], phone: &str, code: &str) -> String {
    hex::encode(accounts::keyed_hash(secret, "alertme-code-v1", &[phone, code]))
}

/// Sends a fresh code to `phone` if the guards allow. The caller answers the same whether the
/// number is registered or not.
pub async fn request_code(state: &Core, ip: IpAddr, phone: &str, language: Option<&str>) -> Result<()> {
    // The phone's or browser's language: one without a catalog gets English, not an error.
    let language = language.and_then(crate::domain::wording::language);
    let phone = state.guard.countries.textable(phone)?;
    if let Err(which) = state.guard.allow_code(ip, &phone) {
        tracing::warn!(guard = ?which, "registration text refused by guard");
        return Err(Error::RateLimited);
    }
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    let now = crate::now_ms();
    let txn = crate::storage::write_txn(&state.db).await?;
    verifications::Entity::delete_by_id(phone.clone()).exec(&txn).await?;
    verifications::ActiveModel {
        phone: Set(phone.clone()),
        code_hash: Set(code_hash(&state.secret, &phone, &code)),
        expires_at: Set(now + state.settings.code_ttl.as_millis() as i64),
        tries: Set(0),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let minutes = state.settings.code_ttl.as_secs().div_ceil(60);
    let body = crate::domain::notify::code_text(language.unwrap_or_default(), &code, minutes);
    outbox::enqueue(&txn, NewText { kind: kind::CODE, to: &phone, body: Some(body), ..Default::default() })
        .await?;
    txn.commit().await?;
    state.outbox.wake();
    Ok(())
}

/// Checks a code; on success creates the user if new, and a device. Codes are single use and
/// die after [`MAX_TRIES`] wrong guesses or when they expire.
pub async fn verify(state: &Core, ip: IpAddr, req: VerifyRequest) -> Result<VerifyResponse> {
    if !state.guard.allow_verify(ip) {
        return Err(Error::RateLimited);
    }
    let phone = crate::e164::normalize(&req.phone)?;
    let code = req.code.trim();
    let now = crate::now_ms();
    // Every guess takes one try first, in one conditional update: parallel guesses cannot all
    // read the same count, so at most MAX_TRIES of them are ever compared with the code.
    use sea_orm::sea_query::{Expr, ExprTrait};
    let took = verifications::Entity::update_many()
        .col_expr(verifications::Column::Tries, Expr::col(verifications::Column::Tries).add(1))
        .filter(verifications::Column::Phone.eq(phone.clone()))
        .filter(verifications::Column::Tries.lt(MAX_TRIES))
        .filter(verifications::Column::ExpiresAt.gt(now))
        .exec(&state.db)
        .await?;
    if took.rows_affected != 1 {
        // No code, an expired one, or one out of tries: it is dead.
        verifications::Entity::delete_many()
            .filter(verifications::Column::Phone.eq(phone))
            .filter(
                sea_orm::Condition::any()
                    .add(verifications::Column::Tries.gte(MAX_TRIES))
                    .add(verifications::Column::ExpiresAt.lte(now)),
            )
            .exec(&state.db)
            .await?;
        return Err(Error::InvalidCode);
    }
    let hash = code_hash(&state.secret, &phone, code);
    if code.len() != 6 {
        return Err(Error::InvalidCode);
    }
    let txn = crate::storage::write_txn(&state.db).await?;
    // Single use: only the request that deletes the row wins.
    let used = verifications::Entity::delete_many()
        .filter(verifications::Column::Phone.eq(phone.clone()))
        .filter(verifications::Column::CodeHash.eq(hash))
        .exec(&txn)
        .await?;
    if used.rows_affected != 1 {
        return Err(Error::InvalidCode);
    }
    let name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or("AlertMe user");
    let language = req.language.as_deref().and_then(crate::domain::wording::language);
    let user = accounts::user_for_phone(&txn, name, &phone, language).await?;
    let label = req.device_label.as_deref().unwrap_or("phone");
    let (device_id, token) = accounts::add_device(&txn, &user.id, label).await?;
    txn.commit().await?;
    Ok(VerifyResponse { user_id: user.id, device_id, device_token: token })
}
