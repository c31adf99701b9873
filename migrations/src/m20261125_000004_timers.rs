//! Check-in timers (dead man's switch), PINs, last known positions, and where an alert came from.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Timers::Table)
                .col(ColumnDef::new(Timers::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Timers::UserId).string().not_null())
                .col(ColumnDef::new(Timers::DeviceId).string().not_null())
                .col(ColumnDef::new(Timers::Note).string().null())
                .col(ColumnDef::new(Timers::Destination).string().null())
                .col(ColumnDef::new(Timers::DeadlineAt).big_integer().not_null())
                .col(ColumnDef::new(Timers::GraceMs).big_integer().not_null())
                .col(ColumnDef::new(Timers::Status).string().not_null())
                .col(ColumnDef::new(Timers::AlertId).string().null())
                .col(ColumnDef::new(Timers::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(Timers::UpdatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("timers_due")
                .table(Timers::Table)
                .col(Timers::Status)
                .col(Timers::DeadlineAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserPins::Table)
                .col(ColumnDef::new(UserPins::UserId).string().not_null().primary_key())
                .col(ColumnDef::new(UserPins::PinHash).string().not_null())
                .col(ColumnDef::new(UserPins::DuressPinHash).string().null())
                .col(ColumnDef::new(UserPins::UpdatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(UserPositions::Table)
                .col(ColumnDef::new(UserPositions::UserId).string().not_null().primary_key())
                .col(ColumnDef::new(UserPositions::Lat).double().not_null())
                .col(ColumnDef::new(UserPositions::Lon).double().not_null())
                .col(ColumnDef::new(UserPositions::AccuracyM).double().not_null())
                .col(ColumnDef::new(UserPositions::TimeMs).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        for col in [Alerts::Source, Alerts::Note] {
            m.alter_table(
                Table::alter()
                    .table(Alerts::Table)
                    .add_column(ColumnDef::new(col).string().null())
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Alerts::Table)
                .add_column(ColumnDef::new(Alerts::Duress).boolean().null())
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Timers {
    Table,
    Id,
    UserId,
    DeviceId,
    Note,
    Destination,
    DeadlineAt,
    GraceMs,
    Status,
    AlertId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserPins {
    Table,
    UserId,
    PinHash,
    DuressPinHash,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserPositions {
    Table,
    UserId,
    Lat,
    Lon,
    AccuracyM,
    TimeMs,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Source,
    Note,
    Duress,
}
