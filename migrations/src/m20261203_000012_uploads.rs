//! Recording uploads: resumable uploads (tus) and which stored parts an upload wrote into.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Uploads::Table)
                .if_not_exists()
                .col(ColumnDef::new(Uploads::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Uploads::AlertId).string().not_null())
                .col(ColumnDef::new(Uploads::DeviceId).string().not_null())
                // Declared total length; null for a plain upload whose length was not given.
                .col(ColumnDef::new(Uploads::Length).big_integer().null())
                // Bytes received and committed: where a resumed upload continues.
                .col(ColumnDef::new(Uploads::Offset).big_integer().not_null())
                // Video or audio, as the client said (the container is sniffed from the bytes).
                .col(ColumnDef::new(Uploads::Video).boolean().not_null())
                // What the client declared (canonical form), used when it agrees with the bytes.
                .col(ColumnDef::new(Uploads::DeclaredMime).string().null())
                // The stored part the bytes go to; null until the first bytes arrive.
                .col(ColumnDef::new(Uploads::Part).integer().null())
                .col(ColumnDef::new(Uploads::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(Uploads::CompletedAt).big_integer().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uploads_alert")
                .table(Uploads::Table)
                .col(Uploads::AlertId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // Set on a part an upload wrote into: the phone's stream no longer continues it.
        m.alter_table(
            Table::alter()
                .table(AudioParts::Table)
                .add_column(ColumnDef::new(AudioParts::UploadedAt).big_integer().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(AudioParts::Table).drop_column(AudioParts::UploadedAt).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Uploads::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Uploads {
    Table,
    Id,
    AlertId,
    DeviceId,
    Length,
    Offset,
    Video,
    DeclaredMime,
    Part,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum AudioParts {
    Table,
    UploadedAt,
}
