//! REST resources, one file each: what a phone app, the dashboard or a provider calls.

pub(super) mod account;
pub(super) mod config;
pub(super) mod contacts;
pub(super) mod evidence;
pub(super) mod health;
pub(super) mod links;
pub(super) mod place;
pub(super) mod recording;
pub(super) mod sms_hooks;
pub(super) mod timers;
pub(super) mod trail;
pub(super) mod upload;
