//! This browser's device credentials, kept in `localStorage` after the SMS-code sign-in.

use serde::{Deserialize, Serialize};

const KEY: &str = "alertme.device";

/// A signed-in device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// `amd_…` device token.
    pub token: String,
    /// The person's name as registered.
    pub name: String,
    /// Their number, E.164.
    pub phone: String,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The stored account, if this browser signed in before.
pub fn load() -> Option<Account> {
    serde_json::from_str(&storage()?.get_item(KEY).ok()??).ok()
}

/// Remembers the account.
pub fn save(a: &Account) {
    if let Some(s) = storage() {
        let _ = s.set_item(KEY, &serde_json::to_string(a).expect("serializes"));
    }
}

/// Forgets it (signed out, or the device was revoked).
pub fn forget() {
    if let Some(s) = storage() {
        let _ = s.remove_item(KEY);
    }
}
