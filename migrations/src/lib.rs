//! AlertMe's database schema, one SeaORM migration per step; applied on every server boot.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_core;
mod m20261125_000002_contacts_sms;
mod m20261125_000003_event_detail;
mod m20261125_000004_timers;
mod m20261125_000005_silence_geozones;
mod m20261126_000006_audio_in_db;
mod m20261202_000007_abuse_limits;
mod m20261202_000008_languages;
mod m20261202_000009_alert_owners;
mod m20261202_000010_cluster_nodes;
mod m20261202_000011_evidence;
mod m20261203_000012_uploads;
mod m20261203_000013_alert_reasons;

/// Runs AlertMe's migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_core::Migration),
            Box::new(m20261125_000002_contacts_sms::Migration),
            Box::new(m20261125_000003_event_detail::Migration),
            Box::new(m20261125_000004_timers::Migration),
            Box::new(m20261125_000005_silence_geozones::Migration),
            Box::new(m20261126_000006_audio_in_db::Migration),
            Box::new(m20261202_000007_abuse_limits::Migration),
            Box::new(m20261202_000008_languages::Migration),
            Box::new(m20261202_000009_alert_owners::Migration),
            Box::new(m20261202_000010_cluster_nodes::Migration),
            Box::new(m20261202_000011_evidence::Migration),
            Box::new(m20261203_000012_uploads::Migration),
            Box::new(m20261203_000013_alert_reasons::Migration),
        ]
    }
}
