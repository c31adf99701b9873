//! Audio chunk bytes live in the database row, committed with it: one sequential log write per batch.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Null for chunks stored before this step: their bytes are still in part files, which
        // the server imports at start-up (store::import_part_files).
        m.alter_table(
            Table::alter()
                .table(AudioChunks::Table)
                .add_column(ColumnDef::new(AudioChunks::Data).blob().null())
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum AudioChunks {
    Table,
    Data,
}
