//! Who each text is sent for (per-person text budgets), indexes for the revocation poller, and
//! refused fixes (their seqs are consumed and acknowledged).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Null for texts queued before this step and for sign-in codes (no person yet).
        m.alter_table(
            Table::alter()
                .table(SmsOutbox::Table)
                .add_column(ColumnDef::new(SmsOutbox::UserId).string().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sms_outbox_user_recent")
                .table(SmsOutbox::Table)
                .col(SmsOutbox::UserId)
                .col(SmsOutbox::CreatedAt)
                .to_owned(),
        )
        .await?;
        for (name, table) in [
            ("watch_tokens_revoked", Alias::new("watch_tokens")),
            ("responders_revoked", Alias::new("responders")),
            ("devices_revoked", Alias::new("devices")),
        ] {
            m.create_index(Index::create().name(name).table(table).col(Alias::new("revoked_at")).to_owned())
                .await?;
        }
        m.create_table(
            Table::create()
                .table(RefusedFixes::Table)
                .col(ColumnDef::new(RefusedFixes::AlertId).string().not_null())
                .col(ColumnDef::new(RefusedFixes::Seq).big_integer().not_null())
                .col(ColumnDef::new(RefusedFixes::Reason).string().not_null())
                .col(ColumnDef::new(RefusedFixes::ReceivedAt).big_integer().not_null())
                .primary_key(Index::create().col(RefusedFixes::AlertId).col(RefusedFixes::Seq))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum RefusedFixes {
    Table,
    AlertId,
    Seq,
    Reason,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum SmsOutbox {
    Table,
    UserId,
    CreatedAt,
}
