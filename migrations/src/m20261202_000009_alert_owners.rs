//! Cluster mode: which node owns each live alert, with a fencing number that only grows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AlertOwners::Table)
                .if_not_exists()
                .col(ColumnDef::new(AlertOwners::AlertId).string().not_null().primary_key())
                .col(ColumnDef::new(AlertOwners::NodeId).string().not_null())
                .col(ColumnDef::new(AlertOwners::Fence).big_integer().not_null())
                .col(ColumnDef::new(AlertOwners::RenewedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("alert_owners_node")
                .table(AlertOwners::Table)
                .col(AlertOwners::NodeId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum AlertOwners {
    Table,
    AlertId,
    NodeId,
    Fence,
    RenewedAt,
}
