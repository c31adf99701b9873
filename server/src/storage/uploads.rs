//! Upload rows: a resumable upload's declared length, who may continue it, and where it stands.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter,
};

use crate::storage::entity::uploads;

pub use crate::storage::entity::uploads::Model as Upload;

/// Stores a new upload, at offset 0.
pub async fn create(db: &DatabaseConnection, row: Upload) -> Result<Upload, sea_orm::DbErr> {
    uploads::ActiveModel {
        id: Set(row.id),
        alert_id: Set(row.alert_id),
        device_id: Set(row.device_id),
        length: Set(row.length),
        offset: Set(0),
        video: Set(row.video),
        declared_mime: Set(row.declared_mime),
        part: Set(None),
        created_at: Set(row.created_at),
        completed_at: Set(None),
    }
    .insert(db)
    .await
}

/// An upload by id.
pub async fn find(db: &DatabaseConnection, id: &str) -> Result<Option<Upload>, sea_orm::DbErr> {
    uploads::Entity::find_by_id(id.to_owned()).one(db).await
}

/// Resumable uploads of an alert begun within the last day and not complete yet (a plain
/// upload cannot be resumed, and one abandoned for a day no longer counts).
pub async fn open_count(db: &DatabaseConnection, alert_id: &str) -> Result<u64, sea_orm::DbErr> {
    uploads::Entity::find()
        .filter(uploads::Column::AlertId.eq(alert_id))
        .filter(uploads::Column::CompletedAt.is_null())
        .filter(uploads::Column::Length.is_not_null())
        .filter(uploads::Column::CreatedAt.gt(crate::now_ms() - 24 * 3600 * 1000))
        .count(db)
        .await
}

/// Records that a plain upload (whose length was not declared) ended at `offset`.
pub async fn complete(
    db: &DatabaseConnection,
    id: &str,
    offset: u64,
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    uploads::Entity::update_many()
        .col_expr(uploads::Column::Length, sea_orm::sea_query::Expr::value(offset as i64))
        .col_expr(uploads::Column::CompletedAt, sea_orm::sea_query::Expr::value(now))
        .filter(uploads::Column::Id.eq(id))
        .filter(uploads::Column::Offset.eq(offset as i64))
        .exec(db)
        .await?;
    Ok(())
}
