//! Evidence: each stored item's place and hash in its alert's chain, signed chain heads, the
//! chain-of-custody log, legal holds, what retention removed, erased people and forgotten numbers.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Null on rows stored before the chain existed.
        for table in [Items::Fixes, Items::AudioChunks] {
            for col in [
                ColumnDef::new(Items::ChainN).big_integer().null().to_owned(),
                ColumnDef::new(Items::ChainHash).string().null().to_owned(),
            ] {
                m.alter_table(Table::alter().table(table.clone()).add_column(col).to_owned()).await?;
            }
        }
        // One chain item per number and alert in each table (a repeat fails loudly).
        for (name, table) in [("fixes_chain", Items::Fixes), ("audio_chunks_chain", Items::AudioChunks)] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(table)
                    .col(Items::AlertId)
                    .col(Items::ChainN)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        for col in [
            ColumnDef::new(Alerts::HoldReason).string().null().to_owned(),
            ColumnDef::new(Alerts::HoldBy).string().null().to_owned(),
            ColumnDef::new(Alerts::HoldAt).big_integer().null().to_owned(),
            ColumnDef::new(Alerts::PurgedAt).big_integer().null().to_owned(),
        ] {
            m.alter_table(Table::alter().table(Alerts::Table).add_column(col).to_owned()).await?;
        }
        m.create_table(
            Table::create()
                .table(EvidenceSeals::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(EvidenceSeals::Id).big_integer().not_null().auto_increment().primary_key(),
                )
                .col(ColumnDef::new(EvidenceSeals::AlertId).string().not_null())
                .col(ColumnDef::new(EvidenceSeals::Items).big_integer().not_null())
                .col(ColumnDef::new(EvidenceSeals::Head).string().not_null())
                .col(ColumnDef::new(EvidenceSeals::SignedAt).big_integer().not_null())
                .col(ColumnDef::new(EvidenceSeals::Reason).string().not_null())
                .col(ColumnDef::new(EvidenceSeals::PublicKey).string().not_null())
                .col(ColumnDef::new(EvidenceSeals::Signature).string().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("evidence_seals_alert")
                .table(EvidenceSeals::Table)
                .col(EvidenceSeals::AlertId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // Set when a person erased their account while an alert of theirs was on hold: the
        // rest is gone, the row waits for the hold to be lifted.
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(ColumnDef::new(Users::ErasedAt).big_integer().null())
                .to_owned(),
        )
        .await?;
        // Numbers that asked to be forgotten, as a keyed hash: they are never added or texted again.
        m.create_table(
            Table::create()
                .table(ForgottenNumbers::Table)
                .if_not_exists()
                .col(ColumnDef::new(ForgottenNumbers::PhoneHash).string().not_null().primary_key())
                .col(ColumnDef::new(ForgottenNumbers::At).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Custody::Table)
                .if_not_exists()
                .col(ColumnDef::new(Custody::Id).big_integer().not_null().auto_increment().primary_key())
                .col(ColumnDef::new(Custody::AlertId).string().not_null())
                .col(ColumnDef::new(Custody::At).big_integer().not_null())
                .col(ColumnDef::new(Custody::Action).string().not_null())
                .col(ColumnDef::new(Custody::Who).string().not_null())
                .col(ColumnDef::new(Custody::AddrHash).string().null())
                .col(ColumnDef::new(Custody::Detail).string().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("custody_alert")
                .table(Custody::Table)
                .col(Custody::AlertId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(DeriveIden, Clone)]
enum Items {
    Fixes,
    AudioChunks,
    AlertId,
    ChainN,
    ChainHash,
}

#[derive(DeriveIden)]
enum Alerts {
    Table,
    HoldReason,
    HoldBy,
    HoldAt,
    PurgedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ErasedAt,
}

#[derive(DeriveIden)]
enum ForgottenNumbers {
    Table,
    PhoneHash,
    At,
}

#[derive(DeriveIden)]
enum EvidenceSeals {
    Table,
    Id,
    AlertId,
    Items,
    Head,
    SignedAt,
    Reason,
    PublicKey,
    Signature,
}

#[derive(DeriveIden)]
enum Custody {
    Table,
    Id,
    AlertId,
    At,
    Action,
    Who,
    AddrHash,
    Detail,
}
