//! The SMS outbox's rows: queued with what causes them, claimed, finished or rescheduled.
//!
//! The sending engine (`sms::outbox`) drives its rows through these; the domain queues texts
//! with [`enqueue`] and reads budgets and delivery states here too.

use alertme_protocol::Delivery;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::storage::entity::{contacts, sms_outbox, watch_tokens};

pub use sms_outbox::Model as Row;

/// What a row is for.
pub mod kind {
    /// "NAME needs help — watch live: …" to a contact.
    pub const ALERT: &str = "alert";
    /// The alert ended.
    pub const ALL_CLEAR: &str = "all_clear";
    /// The SOS phone went silent: last known position.
    pub const PHONE_SILENT: &str = "phone_silent";
    /// The person "cancelled" with the duress PIN: the alert goes on.
    pub const DURESS: &str = "duress";
    /// Informational text to a new contact.
    pub const CONTACT_ADDED: &str = "contact_added";
    /// Verification code.
    pub const CODE: &str = "code";
}

/// Statuses a row moves through. Only forward: see [`rank`].
pub mod status {
    /// Waiting for its (next) attempt.
    pub const PENDING: &str = "pending";
    /// An attempt is under way.
    pub const SENDING: &str = "sending";
    /// The provider accepted it.
    pub const QUEUED: &str = "queued";
    /// Left the provider (final when no delivery report follows).
    pub const SENT: &str = "sent";
    /// Delivered to the handset.
    pub const DELIVERED: &str = "delivered";
    /// The carrier could not deliver it.
    pub const UNDELIVERED: &str = "undelivered";
    /// Failed for good.
    pub const FAILED: &str = "failed";
    /// The recipient opted out (STOP).
    pub const OPTED_OUT: &str = "opted_out";
    /// Never sent: the person's texts for this hour were used up (SMS-pumping guard).
    pub const LIMITED: &str = "limited";
}

/// A text to queue.
#[derive(Debug, Clone, Default)]
pub struct NewText<'a> {
    /// One of [`kind`].
    pub kind: &'a str,
    /// The alert it is about.
    pub alert_id: Option<&'a str>,
    /// The contact it goes to.
    pub contact_id: Option<&'a str>,
    /// The person it is sent for (counts against their hourly budget).
    pub user_id: Option<&'a str>,
    /// Recipient, E.164.
    pub to: &'a str,
    /// Fixed text; `None` for texts worded at send time.
    pub body: Option<String>,
    /// Over the person's budget: recorded as [`status::LIMITED`] and never sent.
    pub limited: bool,
}

/// Queues a text inside the caller's transaction.
pub async fn enqueue<C: ConnectionTrait>(db: &C, t: NewText<'_>) -> Result<(), DbErr> {
    let now = crate::now_ms();
    let state = if t.limited { status::LIMITED } else { status::PENDING };
    sms_outbox::Entity::insert(sms_outbox::ActiveModel {
        kind: Set(t.kind.to_owned()),
        alert_id: Set(t.alert_id.map(str::to_owned)),
        contact_id: Set(t.contact_id.map(str::to_owned)),
        user_id: Set(t.user_id.map(str::to_owned)),
        to_phone: Set(t.to.to_owned()),
        body: Set(if t.limited { None } else { t.body }),
        status: Set(state.to_owned()),
        attempts: Set(0),
        in_doubt: Set(false),
        next_attempt_at: Set(now),
        attempt_started_at: Set(None),
        provider_sid: Set(None),
        error_code: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Rows caught mid-send by a crash may or may not have reached the provider: they go back to
/// pending, marked in doubt (the engine asks the provider before resending them).
pub async fn recover_in_flight(db: &DatabaseConnection) -> Result<(), DbErr> {
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, status::PENDING.into())
        .col_expr(sms_outbox::Column::InDoubt, true.into())
        .filter(sms_outbox::Column::Status.eq(status::SENDING))
        .exec(db)
        .await?;
    Ok(())
}

/// Texts the provider took that stayed `queued` since before `cutoff` (ms).
pub async fn stale_queued(db: &DatabaseConnection, cutoff: i64, limit: u64) -> Result<Vec<Row>, DbErr> {
    sms_outbox::Entity::find()
        .filter(sms_outbox::Column::Status.eq(status::QUEUED))
        .filter(sms_outbox::Column::UpdatedAt.lt(cutoff))
        .limit(limit)
        .all(db)
        .await
}

/// Moves a row from status `from` to `to` (a status poll's or a delivery report's answer),
/// with the provider's error code if any. Conditional on `from`, so a row that moved meanwhile
/// (another report, racing) stays where it is: statuses never go backwards.
pub async fn advance(
    db: &DatabaseConnection,
    id: i64,
    from: &str,
    to: &str,
    error_code: Option<&str>,
) -> Result<(), DbErr> {
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, to.into())
        .col_expr(sms_outbox::Column::ErrorCode, error_code.map(str::to_owned).into())
        .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
        .filter(sms_outbox::Column::Id.eq(id))
        .filter(sms_outbox::Column::Status.eq(from))
        .exec(db)
        .await?;
    Ok(())
}

/// The row the provider knows as `sid`.
pub async fn by_sid(db: &DatabaseConnection, sid: &str) -> Result<Option<Row>, DbErr> {
    sms_outbox::Entity::find().filter(sms_outbox::Column::ProviderSid.eq(sid)).one(db).await
}

/// Rows by status, for `/metrics`.
pub async fn count_by_status(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    sms_outbox::Entity::find()
        .select_only()
        .column(sms_outbox::Column::Status)
        .expr(sea_orm::sea_query::Func::count(sea_orm::sea_query::Expr::col(sms_outbox::Column::Id)))
        .group_by(sms_outbox::Column::Status)
        .into_tuple()
        .all(db)
        .await
}

/// Pending rows due by `now`, oldest first.
pub async fn due(db: &DatabaseConnection, now: i64, limit: u64) -> Result<Vec<Row>, DbErr> {
    sms_outbox::Entity::find()
        .filter(sms_outbox::Column::Status.eq(status::PENDING))
        .filter(sms_outbox::Column::NextAttemptAt.lte(now))
        .order_by_asc(sms_outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// When the next pending row is due.
pub async fn next_due(db: &DatabaseConnection) -> Result<Option<i64>, DbErr> {
    Ok(sms_outbox::Entity::find()
        .select_only()
        .column_as(sms_outbox::Column::NextAttemptAt.min(), "next")
        .filter(sms_outbox::Column::Status.eq(status::PENDING))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten())
}

/// Claims a pending row for an attempt; false when another sender (another server on the same
/// database) took it first.
pub async fn claim(db: &DatabaseConnection, row: &Row, now: i64) -> Result<bool, DbErr> {
    let claimed = sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, status::SENDING.into())
        .col_expr(sms_outbox::Column::Attempts, (row.attempts + 1).into())
        .col_expr(sms_outbox::Column::AttemptStartedAt, now.into())
        .col_expr(sms_outbox::Column::UpdatedAt, now.into())
        .filter(sms_outbox::Column::Id.eq(row.id))
        .filter(sms_outbox::Column::Status.eq(status::PENDING))
        .exec(db)
        .await?;
    Ok(claimed.rows_affected > 0)
}

/// Whether a contact asked for no more texts (STOP).
pub async fn contact_opted_out(db: &DatabaseConnection, contact_id: &str) -> Result<bool, DbErr> {
    Ok(contacts::Entity::find_by_id(contact_id.to_owned())
        .one(db)
        .await?
        .is_some_and(|c| c.opted_out_at.is_some()))
}

/// Ends a row's attempts with status `st`. A code's body is dropped: it is only needed until
/// the provider has it.
pub async fn finish(
    db: &DatabaseConnection,
    row: &Row,
    st: &str,
    sid: Option<String>,
    error: Option<&str>,
) -> Result<(), DbErr> {
    let mut q = sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, st.into())
        .col_expr(sms_outbox::Column::InDoubt, false.into())
        .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
        .col_expr(sms_outbox::Column::ErrorCode, error.map(str::to_owned).into());
    if let Some(sid) = sid {
        q = q.col_expr(sms_outbox::Column::ProviderSid, sid.into());
    }
    if row.kind == kind::CODE {
        q = q.col_expr(sms_outbox::Column::Body, Option::<String>::None.into());
    }
    q.filter(sms_outbox::Column::Id.eq(row.id)).exec(db).await?;
    Ok(())
}

/// Puts a row back to pending, next tried at `next` (ms).
pub async fn reschedule(db: &DatabaseConnection, row: &Row, in_doubt: bool, next: i64) -> Result<(), DbErr> {
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, status::PENDING.into())
        .col_expr(sms_outbox::Column::InDoubt, (in_doubt || row.in_doubt).into())
        .col_expr(sms_outbox::Column::NextAttemptAt, next.into())
        .col_expr(sms_outbox::Column::UpdatedAt, crate::now_ms().into())
        .filter(sms_outbox::Column::Id.eq(row.id))
        .exec(db)
        .await?;
    Ok(())
}

/// Texts sent for a person (to their contacts) since `since`, ms: what their hourly budget counts.
pub async fn sent_for<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    kinds: &[&str],
    since: i64,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    sms_outbox::Entity::find()
        .filter(sms_outbox::Column::UserId.eq(user_id))
        .filter(sms_outbox::Column::Kind.is_in(kinds.iter().copied()))
        .filter(sms_outbox::Column::CreatedAt.gte(since))
        .filter(sms_outbox::Column::Status.ne(status::LIMITED))
        .count(db)
        .await
}

/// Watch-token label of a contact.
pub fn contact_label(contact_id: &str) -> String {
    format!("contact:{contact_id}")
}

/// Current delivery state of an alert's contact texts.
pub async fn deliveries(db: &DatabaseConnection, alert_id: &str) -> Result<Vec<Delivery>, DbErr> {
    let rows = sms_outbox::Entity::find()
        .filter(sms_outbox::Column::AlertId.eq(alert_id))
        .filter(sms_outbox::Column::Kind.eq(kind::ALERT))
        .order_by_asc(sms_outbox::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<String> = rows.iter().filter_map(|r| r.contact_id.clone()).collect();
    let people = contacts::Entity::find().filter(contacts::Column::Id.is_in(ids)).all(db).await?;
    let tokens =
        watch_tokens::Entity::find().filter(watch_tokens::Column::AlertId.eq(alert_id)).all(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let cid = r.contact_id.clone().unwrap_or_default();
            let label = contact_label(&cid);
            Delivery {
                contact: people
                    .iter()
                    .find(|c| c.id == cid)
                    .map_or_else(|| "(removed contact)".into(), |c| c.name.clone()),
                phone: crate::e164::mask(&r.to_phone),
                status: r.status,
                opened: tokens.iter().any(|t| t.label == label && t.first_opened_at.is_some()),
                revoked: tokens.iter().any(|t| t.label == label && t.revoked_at.is_some()),
                contact_id: people.iter().any(|c| c.id == cid).then_some(cid),
            }
        })
        .collect())
}
