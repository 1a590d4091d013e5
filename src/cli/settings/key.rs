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

/// The environment variable that holds the key.
pub const KEY_ENV: &str = "IMPORTIO_API_KEY";

/// How to set a key, for the "no API key" error.
pub const NO_KEY_HELP: &str =
    "no API key: set IMPORTIO_API_KEY=<your key>, or put the key alone in a file \
     (chmod 600) and pass --api-key-file FILE or set `api_key_file = \"FILE\"` in \
     ~/.config/importfs/config.toml (the key is in the Import.io dashboard under User Settings)";

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
    match std::env::var(KEY_ENV) {
        Ok(k) if !k.trim().is_empty() => Ok(ApiKey::new(k.trim())),
        _ => bail!("{NO_KEY_HELP}"),
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
