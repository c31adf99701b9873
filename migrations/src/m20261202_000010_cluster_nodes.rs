//! Cluster mode: each running node's heartbeat (an owner whose heartbeat stopped is gone).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ClusterNodes::Table)
                .if_not_exists()
                .col(ColumnDef::new(ClusterNodes::NodeId).string().not_null().primary_key())
                .col(ColumnDef::new(ClusterNodes::SeenAt).big_integer().not_null())
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum ClusterNodes {
    Table,
    NodeId,
    SeenAt,
}
