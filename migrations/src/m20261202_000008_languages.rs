//! Languages of texts: each person's (their contacts' default) and each contact's own.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::Language).string().not_null().default("en"))
                .to_owned(),
        )
        .await?;
        // Null: the person's language.
        m.alter_table(
            Table::alter()
                .table(Contacts::Table)
                .add_column(ColumnDef::new(Contacts::Language).string().null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Language,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Language,
}
