//! The OS's secret store, where `importfs login` keeps the API key: the
//! Secret Service on Linux (GNOME Keyring, KWallet; over the session
//! D-Bus), the login Keychain on macOS. Both are keyring 4's stores, behind
//! `keyring-core`'s one API, so the caller (`cli/settings/stored`) is
//! written once.
//!
//! Subtle: opening the Linux store already talks to the bus (it opens an
//! encrypted session with the service), so it fails when there is no
//! session bus or no Secret Service on it: [`open`] failing means "no
//! store here", not "the store refused". The macOS Keychain opens without a
//! call; a refused or timed-out Keychain prompt shows later, on the item.
//! On macOS the store is the keychain module of `apple-native-keyring-store`
//! (its "legacy keychain": generic passwords in the user's login keychain,
//! `SecKeychainAddGenericPassword` / `SecKeychainFindGenericPassword` through
//! `security-framework`, what `security add-generic-password -s importfs -a
//! URL` makes), which needs no app signing or provisioning profile, unlike
//! its data-protection module; `security find-generic-password -s importfs`
//! shows the item.

use keyring_core::{CredentialStore, Entry, Result};
use std::sync::Arc;

/// The store's name, for messages.
#[cfg(target_os = "linux")]
pub const SECRET_STORE: &str = "the Secret Service";
/// The store's name, for messages.
#[cfg(target_os = "macos")]
pub const SECRET_STORE: &str = "the macOS Keychain";

/// Open the store (Linux: connect to the Secret Service on the session bus).
#[cfg(target_os = "linux")]
pub fn open() -> Result<Arc<CredentialStore>> {
    Ok(zbus_secret_service_keyring_store::Store::new()?)
}

/// Open the store (macOS: the user's default keychain, no call made yet).
#[cfg(target_os = "macos")]
pub fn open() -> Result<Arc<CredentialStore>> {
    Ok(apple_native_keyring_store::keychain::Store::new()?)
}

/// The item of `user` (an API URL) under `service`. On Linux it gets a
/// label people can read in Seahorse or KWallet's manager (the store's own
/// is `keyring:USER@SERVICE`); the Keychain store takes no label.
#[cfg(target_os = "linux")]
pub fn entry(store: &Arc<CredentialStore>, service: &str, user: &str) -> Result<Entry> {
    let label = format!("importfs API key for {user}");
    let modifiers = std::collections::HashMap::from([("label", label.as_str())]);
    Entry::new_in_store_with_modifiers(store, service, user, &modifiers)
}

/// The item of `user` (an API URL) under `service`: a generic password,
/// service `service`, account `user`.
#[cfg(target_os = "macos")]
pub fn entry(store: &Arc<CredentialStore>, service: &str, user: &str) -> Result<Entry> {
    Entry::new_in_store(store, service, user)
}
