//! The key `importfs login` keeps, one per API URL: in the OS's secret
//! store ([`secret`]: the Secret Service, the macOS Keychain), else in a
//! 0600 file ([`file`]). It is the last place a command looks for a key,
//! after `--api-key-file`, `IMPORTIO_API_KEY` and the config file's
//! `api_key_file` (see [`super::resolve`]).
//!
//! Subtle: "no secret store here" (no session bus, no Secret Service on
//! it) is not an error: `login` keeps the key in the file and says so, and
//! a lookup there finds nothing. A store that is there but locked, refuses,
//! or does not answer in time is an error of one line that names
//! `--api-key-file`, and `login` then stores nothing: a key silently put in
//! a file when the user expected their keyring would surprise them. A
//! lookup reads the file first: it costs no D-Bus round trip and cannot
//! hang; `login` into the store removes the URL's key from the file, so
//! that one URL has one stored key.

pub mod file;
pub mod secret;

use crate::api::ApiKey;
use crate::platform::secrets::SECRET_STORE;
use anyhow::{anyhow, Result};
use secret::StoreError;
use std::fmt;
use std::path::PathBuf;

/// What to do instead when the store cannot be used.
pub const FALLBACK_HELP: &str = "put the key alone in a file (chmod 600) and pass \
                                 --api-key-file FILE, or set IMPORTIO_API_KEY";

/// Where a stored key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The OS's secret store.
    SecretStore,
    /// The key file.
    File(PathBuf),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::SecretStore => f.write_str(SECRET_STORE),
            Place::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What `save` did: where the key went, and why there if not in the store.
pub struct Saved {
    pub place: Place,
    pub no_store: Option<String>,
}

/// The URL as a stored key's name: without a trailing `/`, so that
/// `--api-url http://h/` and `http://h` find the same key.
pub fn url_name(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// The key stored for `url` and where it is; `None` when there is none.
pub fn lookup(url: &str) -> Result<Option<(ApiKey, Place)>> {
    let url = url_name(url);
    if let Some(path) = file::path() {
        if let Some(key) = file::get(&path, &url)? {
            return Ok(nonblank(key).map(|k| (k, Place::File(path))));
        }
    }
    match secret::get(&url) {
        Ok(key) => Ok(key.and_then(nonblank).map(|k| (k, Place::SecretStore))),
        Err(StoreError::Absent(_)) => Ok(None),
        Err(e) => Err(anyhow!(
            "cannot read the key `importfs login` stored: {e}; {FALLBACK_HELP}"
        )),
    }
}

fn nonblank(key: String) -> Option<ApiKey> {
    let key = key.trim();
    (!key.is_empty()).then(|| ApiKey::new(key))
}

/// Store `key` for `url`: in the secret store, else (no store here) in the file.
pub fn save(url: &str, key: &ApiKey) -> Result<Saved> {
    let url = url_name(url);
    match secret::set(&url, key.expose()) {
        Ok(()) => {
            // One URL, one stored key: an older one in the file would win.
            if let Some(path) = file::path() {
                file::remove(&path, &url)?;
            }
            Ok(Saved {
                place: Place::SecretStore,
                no_store: None,
            })
        }
        Err(StoreError::Absent(why)) => {
            let path = file::path()
                .ok_or_else(|| anyhow!("no secret store here ({why}) and no home directory for a key file; {FALLBACK_HELP}"))?;
            file::set(&path, &url, key.expose())?;
            Ok(Saved {
                place: Place::File(path),
                no_store: Some(why),
            })
        }
        Err(e) => Err(anyhow!("{e}: nothing was stored; {FALLBACK_HELP}")),
    }
}

/// Remove what `login` stored for `url`, wherever it is; where it was.
/// A store that is absent holds nothing; one that fails is an error after
/// the file's key is gone.
pub fn remove(url: &str) -> Result<Vec<Place>> {
    let url = url_name(url);
    let mut removed = Vec::new();
    if let Some(path) = file::path() {
        if file::remove(&path, &url)? {
            removed.push(Place::File(path));
        }
    }
    match secret::delete(&url) {
        Ok(true) => removed.push(Place::SecretStore),
        Ok(false) | Err(StoreError::Absent(_)) => {}
        Err(e) => return Err(anyhow!("{e}: the key it holds for {url} was not removed")),
    }
    Ok(removed)
}
