//! Calls into the OS's secret store (`platform::secrets`), each bounded in
//! time: an item is `service = "importfs"`, `username = <API URL>` (what
//! `secret-tool lookup service importfs username URL` finds).
//!
//! Subtle: a store call may never return: a locked keyring waits on an
//! unlock prompt no one can see (over ssh, in a container), a Keychain
//! prompt waits for a click, and a D-Bus peer may accept a connection and
//! never answer. So each call runs on a thread of its own and is waited for
//! at most [`STORE_TIMEOUT`]; a call that does not end in time is left
//! behind (the command is about to fail and exit) and the caller gets
//! [`StoreError::TimedOut`]. Error texts are built here from the error's
//! kind, never from data it may carry (a badly encoded secret comes back
//! inside the error).

use crate::platform::secrets;
use keyring_core::{Entry, Error};
use std::sync::mpsc;
use std::time::Duration;

/// How long one store call may take: long enough to type a keyring
/// password into a prompt, short enough that a hung store is soon told.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(15);

/// The `service` of our items.
const SERVICE: &str = "importfs";

/// Why the store could not be used.
#[derive(Debug)]
pub enum StoreError {
    /// There is no store here (no session bus, no Secret Service on it).
    Absent(String),
    /// The store is there but refused or failed (locked, prompt dismissed).
    Failed(String),
    /// No answer within [`STORE_TIMEOUT`].
    TimedOut,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = secrets::SECRET_STORE;
        match self {
            StoreError::Absent(why) => write!(f, "no secret store here ({why})"),
            StoreError::Failed(why) => write!(f, "{store} refused: {why}"),
            StoreError::TimedOut => write!(
                f,
                "{store} did not answer within {} s (a locked keyring, or a prompt no one sees?)",
                STORE_TIMEOUT.as_secs()
            ),
        }
    }
}

/// The key stored for `url`, if any.
pub fn get(url: &str) -> Result<Option<String>, StoreError> {
    let url = url.to_owned();
    bounded(move || match entry(&url)?.get_password() {
        Ok(key) => Ok(Some(key)),
        Err(Error::NoEntry) => Ok(None),
        Err(e) => Err(failed(&e)),
    })
}

/// Store `key` for `url`, replacing any key it had.
pub fn set(url: &str, key: &str) -> Result<(), StoreError> {
    let (url, key) = (url.to_owned(), key.to_owned());
    bounded(move || entry(&url)?.set_password(&key).map_err(|e| failed(&e)))
}

/// Remove every key stored for `url`; whether there was one.
pub fn delete(url: &str) -> Result<bool, StoreError> {
    let url = url.to_owned();
    bounded(move || match entry(&url)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(Error::NoEntry) => Ok(false),
        Err(Error::Ambiguous(entries)) => {
            for e in entries {
                e.delete_credential().map_err(|e| failed(&e))?;
            }
            Ok(true)
        }
        Err(e) => Err(failed(&e)),
    })
}

/// The store's entry for `url`: opening the store is where "no store" shows.
fn entry(url: &str) -> Result<Entry, StoreError> {
    let store = secrets::open().map_err(|e| StoreError::Absent(absent(&e)))?;
    secrets::entry(&store, SERVICE, url).map_err(|e| failed(&e))
}

/// Run `call` on a thread of its own; wait for it at most [`STORE_TIMEOUT`].
fn bounded<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("secret-store".into())
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| StoreError::Failed(format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(STORE_TIMEOUT) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::TimedOut),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(StoreError::Failed("the store call failed".into()))
        }
    }
}

/// Why the store could not be opened, in a few words.
fn absent(e: &Error) -> String {
    match e {
        Error::PlatformFailure(inner) | Error::NoStorageAccess(inner) => short(&inner.to_string()),
        _ => "it cannot be opened".into(),
    }
}

/// What went wrong with a store that is there, by kind only.
fn failed(e: &Error) -> StoreError {
    StoreError::Failed(match e {
        Error::NoStorageAccess(inner) => {
            format!(
                "it is locked or access was denied ({})",
                short(&inner.to_string())
            )
        }
        Error::PlatformFailure(inner) => short(&inner.to_string()),
        Error::BadEncoding(_) | Error::BadDataFormat(..) => "the stored key is not text".into(),
        Error::Ambiguous(items) => format!("{} keys match", items.len()),
        _ => "an unexpected answer".into(),
    })
}

/// A platform error's text, its first line and at most 200 characters
/// (D-Bus errors can be long).
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    line.chars().take(200).collect()
}
