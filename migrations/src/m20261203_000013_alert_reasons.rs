//! Why the server raised an alert, as data (JSON), so that every page can word it in its reader's language.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Alerts::Table)
                .add_column(ColumnDef::new(Alerts::Reason).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(Alerts::Table).drop_column(Alerts::Reason).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Reason,
}
