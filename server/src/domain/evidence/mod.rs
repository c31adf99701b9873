//! Evidence a court can use: the signing key, exported bundles, their offline check, custody.

pub mod bundle;
pub mod custody;
pub mod key;
pub mod retention;
pub mod verify;
