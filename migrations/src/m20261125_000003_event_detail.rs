//! Free text on alert events: responders' notes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(AlertEvents::Table)
                .add_column(ColumnDef::new(AlertEvents::Detail).text().null())
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum AlertEvents {
    Table,
    Detail,
}
