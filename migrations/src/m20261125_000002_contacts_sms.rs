//! Emergency contacts, the SMS outbox, phone verification codes, and "opened" on watch tokens.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Contacts::Table)
                .col(ColumnDef::new(Contacts::Id).string().not_null().primary_key())
                .col(ColumnDef::new(Contacts::UserId).string().not_null())
                .col(ColumnDef::new(Contacts::Name).string().not_null())
                .col(ColumnDef::new(Contacts::Phone).string().not_null())
                .col(ColumnDef::new(Contacts::Position).integer().not_null())
                .col(ColumnDef::new(Contacts::OptedOutAt).big_integer().null())
                .col(ColumnDef::new(Contacts::CreatedAt).big_integer().not_null())
                .foreign_key(
                    ForeignKey::create().from(Contacts::Table, Contacts::UserId).to(Users::Table, Users::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("contacts_user_phone")
                .table(Contacts::Table)
                .col(Contacts::UserId)
                .col(Contacts::Phone)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("contacts_phone").table(Contacts::Table).col(Contacts::Phone).to_owned(),
        )
        .await?;
        // Outbox rows are never deleted: they are the delivery record of every text.
        m.create_table(
            Table::create()
                .table(SmsOutbox::Table)
                .col(ColumnDef::new(SmsOutbox::Id).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(SmsOutbox::Kind).string().not_null())
                .col(ColumnDef::new(SmsOutbox::AlertId).string().null())
                .col(ColumnDef::new(SmsOutbox::ContactId).string().null())
                .col(ColumnDef::new(SmsOutbox::ToPhone).string().not_null())
                .col(ColumnDef::new(SmsOutbox::Body).text().null())
                .col(ColumnDef::new(SmsOutbox::Status).string().not_null())
                .col(ColumnDef::new(SmsOutbox::Attempts).integer().not_null())
                .col(ColumnDef::new(SmsOutbox::InDoubt).boolean().not_null())
                .col(ColumnDef::new(SmsOutbox::NextAttemptAt).big_integer().not_null())
                .col(ColumnDef::new(SmsOutbox::AttemptStartedAt).big_integer().null())
                .col(ColumnDef::new(SmsOutbox::ProviderSid).string().null())
                .col(ColumnDef::new(SmsOutbox::ErrorCode).string().null())
                .col(ColumnDef::new(SmsOutbox::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(SmsOutbox::UpdatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sms_outbox_due")
                .table(SmsOutbox::Table)
                .col(SmsOutbox::Status)
                .col(SmsOutbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sms_outbox_sid")
                .table(SmsOutbox::Table)
                .col(SmsOutbox::ProviderSid)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sms_outbox_alert")
                .table(SmsOutbox::Table)
                .col(SmsOutbox::AlertId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Verifications::Table)
                .col(ColumnDef::new(Verifications::Phone).string().not_null().primary_key())
                .col(ColumnDef::new(Verifications::CodeHash).string().not_null())
                .col(ColumnDef::new(Verifications::ExpiresAt).big_integer().not_null())
                .col(ColumnDef::new(Verifications::Tries).integer().not_null())
                .col(ColumnDef::new(Verifications::CreatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(WatchTokens::Table)
                .add_column(ColumnDef::new(WatchTokens::FirstOpenedAt).big_integer().null())
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    UserId,
    Name,
    Phone,
    Position,
    OptedOutAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SmsOutbox {
    Table,
    Id,
    Kind,
    AlertId,
    ContactId,
    ToPhone,
    Body,
    Status,
    Attempts,
    InDoubt,
    NextAttemptAt,
    AttemptStartedAt,
    ProviderSid,
    ErrorCode,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Verifications {
    Table,
    Phone,
    CodeHash,
    ExpiresAt,
    Tries,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WatchTokens {
    Table,
    FirstOpenedAt,
}
