//! "Phone silent" texts (once per alert) and geozones with their persisted inside/outside state.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Alerts::Table)
                .add_column(ColumnDef::new(Alerts::SilentTextedAt).big_integer().null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Geozones::Table)
                .col(ColumnDef::new(Geozones::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Geozones::UserId).string().not_null())
                .col(ColumnDef::new(Geozones::Name).string().not_null())
                .col(ColumnDef::new(Geozones::Kind).string().not_null())
                .col(ColumnDef::new(Geozones::Geometry).text().not_null())
                .col(ColumnDef::new(Geozones::RadiusM).double().null())
                .col(ColumnDef::new(Geozones::Inside).boolean().null())
                .col(ColumnDef::new(Geozones::Candidate).boolean().null())
                .col(ColumnDef::new(Geozones::CandidateCount).integer().not_null())
                .col(ColumnDef::new(Geozones::CandidateSince).big_integer().null())
                .col(ColumnDef::new(Geozones::LastFixTime).big_integer().null())
                .col(ColumnDef::new(Geozones::CreatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("geozones_user").table(Geozones::Table).col(Geozones::UserId).to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    SilentTextedAt,
}

#[derive(DeriveIden)]
enum Geozones {
    Table,
    Id,
    UserId,
    Name,
    Kind,
    Geometry,
    RadiusM,
    Inside,
    Candidate,
    CandidateCount,
    CandidateSince,
    LastFixTime,
    CreatedAt,
}
