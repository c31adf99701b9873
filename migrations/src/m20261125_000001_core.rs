//! Users, devices, responders, alerts, watch tokens, fixes, audio parts and chunks, alert events.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Times are `BIGINT` milliseconds since the Unix epoch (UTC) and ids are UUID text, so the same
/// schema reads the same on SQLite and PostgreSQL.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(ColumnDef::new(Users::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Users::Name).string().not_null())
                .col(ColumnDef::new(Users::Phone).string().not_null().unique_key())
                .col(ColumnDef::new(Users::CreatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Devices::Table)
                .col(ColumnDef::new(Devices::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Devices::UserId).string().not_null())
                .col(ColumnDef::new(Devices::Label).string().not_null())
                .col(ColumnDef::new(Devices::TokenHash).string().not_null().unique_key())
                .col(ColumnDef::new(Devices::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(Devices::RevokedAt).big_integer().null())
                .foreign_key(
                    ForeignKey::create().from(Devices::Table, Devices::UserId).to(Users::Table, Users::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Responders::Table)
                .col(ColumnDef::new(Responders::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Responders::Name).string().not_null())
                .col(ColumnDef::new(Responders::TokenHash).string().not_null().unique_key())
                .col(ColumnDef::new(Responders::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(Responders::RevokedAt).big_integer().null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Alerts::Table)
                .col(ColumnDef::new(Alerts::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Alerts::UserId).string().not_null())
                .col(ColumnDef::new(Alerts::DeviceId).string().not_null())
                .col(ColumnDef::new(Alerts::ClientId).string().not_null())
                .col(ColumnDef::new(Alerts::Status).string().not_null())
                .col(ColumnDef::new(Alerts::AudioMime).string().null())
                .col(ColumnDef::new(Alerts::StartedAt).big_integer().not_null())
                .col(ColumnDef::new(Alerts::EndedAt).big_integer().null())
                .col(ColumnDef::new(Alerts::ClaimedBy).string().null())
                .foreign_key(
                    ForeignKey::create().from(Alerts::Table, Alerts::UserId).to(Users::Table, Users::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("alerts_user_client")
                .table(Alerts::Table)
                .col(Alerts::UserId)
                .col(Alerts::ClientId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("alerts_status").table(Alerts::Table).col(Alerts::Status).to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(WatchTokens::Table)
                .col(ColumnDef::new(WatchTokens::TokenHash).string().not_null().primary_key())
                .col(ColumnDef::new(WatchTokens::AlertId).string().not_null())
                .col(ColumnDef::new(WatchTokens::Label).string().not_null())
                .col(ColumnDef::new(WatchTokens::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(WatchTokens::RevokedAt).big_integer().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(WatchTokens::Table, WatchTokens::AlertId)
                        .to(Alerts::Table, Alerts::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Fixes::Table)
                .col(ColumnDef::new(Fixes::AlertId).string().not_null())
                .col(ColumnDef::new(Fixes::Seq).big_integer().not_null())
                .col(ColumnDef::new(Fixes::Lat).double().not_null())
                .col(ColumnDef::new(Fixes::Lon).double().not_null())
                .col(ColumnDef::new(Fixes::AccuracyM).double().not_null())
                .col(ColumnDef::new(Fixes::DeviceTime).big_integer().not_null())
                .col(ColumnDef::new(Fixes::BatteryPct).small_integer().null())
                .col(ColumnDef::new(Fixes::SpeedMps).double().null())
                .col(ColumnDef::new(Fixes::HeadingDeg).double().null())
                .col(ColumnDef::new(Fixes::AltitudeM).double().null())
                .col(ColumnDef::new(Fixes::ReceivedAt).big_integer().not_null())
                .primary_key(Index::create().col(Fixes::AlertId).col(Fixes::Seq))
                .foreign_key(
                    ForeignKey::create().from(Fixes::Table, Fixes::AlertId).to(Alerts::Table, Alerts::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("fixes_trail")
                .table(Fixes::Table)
                .col(Fixes::AlertId)
                .col(Fixes::DeviceTime)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AudioParts::Table)
                .col(ColumnDef::new(AudioParts::AlertId).string().not_null())
                .col(ColumnDef::new(AudioParts::Part).integer().not_null())
                .col(ColumnDef::new(AudioParts::Mime).string().not_null())
                .col(ColumnDef::new(AudioParts::FirstSeq).big_integer().not_null())
                .col(ColumnDef::new(AudioParts::CreatedAt).big_integer().not_null())
                .primary_key(Index::create().col(AudioParts::AlertId).col(AudioParts::Part))
                .foreign_key(
                    ForeignKey::create()
                        .from(AudioParts::Table, AudioParts::AlertId)
                        .to(Alerts::Table, Alerts::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AudioChunks::Table)
                .col(ColumnDef::new(AudioChunks::AlertId).string().not_null())
                .col(ColumnDef::new(AudioChunks::Seq).big_integer().not_null())
                .col(ColumnDef::new(AudioChunks::Part).integer().not_null())
                .col(ColumnDef::new(AudioChunks::Offset).big_integer().not_null())
                .col(ColumnDef::new(AudioChunks::Len).integer().not_null())
                .col(ColumnDef::new(AudioChunks::Sha256).string().not_null())
                .col(ColumnDef::new(AudioChunks::ReceivedAt).big_integer().not_null())
                .primary_key(Index::create().col(AudioChunks::AlertId).col(AudioChunks::Seq))
                .foreign_key(
                    ForeignKey::create()
                        .from(AudioChunks::Table, AudioChunks::AlertId)
                        .to(Alerts::Table, Alerts::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(AlertEvents::Table)
                .col(ColumnDef::new(AlertEvents::Id).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(AlertEvents::AlertId).string().not_null())
                .col(ColumnDef::new(AlertEvents::Kind).string().not_null())
                .col(ColumnDef::new(AlertEvents::Actor).string().null())
                .col(ColumnDef::new(AlertEvents::At).big_integer().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(AlertEvents::Table, AlertEvents::AlertId)
                        .to(Alerts::Table, Alerts::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("alert_events_alert")
                .table(AlertEvents::Table)
                .col(AlertEvents::AlertId)
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Phone,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    UserId,
    Label,
    TokenHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Responders {
    Table,
    Id,
    Name,
    TokenHash,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    UserId,
    DeviceId,
    ClientId,
    Status,
    AudioMime,
    StartedAt,
    EndedAt,
    ClaimedBy,
}

#[derive(DeriveIden)]
enum WatchTokens {
    Table,
    TokenHash,
    AlertId,
    Label,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Fixes {
    Table,
    AlertId,
    Seq,
    Lat,
    Lon,
    AccuracyM,
    DeviceTime,
    BatteryPct,
    SpeedMps,
    HeadingDeg,
    AltitudeM,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum AudioParts {
    Table,
    AlertId,
    Part,
    Mime,
    FirstSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AudioChunks {
    Table,
    AlertId,
    Seq,
    Part,
    Offset,
    Len,
    Sha256,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum AlertEvents {
    Table,
    Id,
    AlertId,
    Kind,
    Actor,
    At,
}
