//! The API key: read from `IMPORTIO_API_KEY` or from a key file, never
//! from a flag (argv shows in `ps`) and never from the config file (too
//! easy to copy around with it).
//!
//! Subtle: a key file others can read is only warned about, not refused,
//! because a shared service key may be group-readable on purpose; and the
//! key is trimmed, as `echo KEY > file` leaves a newline that is no part
//! of the key.

use crate::api::ApiKey;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::OnceLock;

/// The environment variable that holds the key.
pub const KEY_ENV: &str = "IMPORTIO_API_KEY";

/// How to set a key, for the "no API key" error.
pub const NO_KEY_HELP: &str =
    "no API key: run `importfs login` (add --api-url URL for another API), or set \
     IMPORTIO_API_KEY=<your key>, or put the key alone in a file (chmod 600) and pass \
     --api-key-file FILE or set `api_key_file = \"FILE\"` in ~/.config/importfs/config.toml \
     (the key is in the Import.io dashboard under User Settings)";

/// The key the process was started with in its environment, once taken
/// out of it by [`take_key_from_env`].
static FROM_ENV: OnceLock<Option<String>> = OnceLock::new();

/// Take `IMPORTIO_API_KEY` out of this process's environment, keeping its
/// value for [`env_key`]: every process importfs starts (fusermount3, which
/// fuser runs; the mount watcher; mount and umount commands) then starts
/// without it. `main` calls it right after parsing the command line, while
/// the process has one thread, as changing the environment requires.
pub fn take_key_from_env() {
    let key = std::env::var(KEY_ENV).ok();
    if key.is_some() {
        std::env::remove_var(KEY_ENV);
    }
    let _ = FROM_ENV.set(key);
}

/// The key from the environment (as it was at start), if set and not blank.
pub fn env_key() -> Option<String> {
    FROM_ENV
        .get()
        .cloned()
        .unwrap_or_else(|| std::env::var(KEY_ENV).ok())
        .filter(|k| !k.trim().is_empty())
}

/// Read the API key: from `file` if given, else from the environment.
pub fn read_api_key(file: Option<&Path>) -> Result<ApiKey> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the API key file {}", path.display()))?;
        let key = text.trim();
        if key.is_empty() {
            bail!("the API key file {} is empty", path.display());
        }
        warn_if_others_can_read(path);
        return Ok(ApiKey::new(key));
    }
    match env_key() {
        Some(k) => Ok(ApiKey::new(k.trim())),
        None => bail!("{NO_KEY_HELP}"),
    }
}

/// A key file others can read is a key others can use: say so (as ssh does
/// of private keys), but go on, as the file may be shared on purpose.
fn warn_if_others_can_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "importfs: warning: the API key file {} can be read by others (mode {mode:03o}): \
                     `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}
