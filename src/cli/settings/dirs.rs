//! Where things go when nobody says: the config file and a background
//! mount's log, after the XDG base directory rules, or the Mac's own
//! places where `platform` says so (the result cache's default is
//! `FsConfig`'s).
//!
//! Subtle: an empty `$XDG_*` or `$HOME` counts as unset, and a relative
//! `$XDG_CONFIG_HOME` too; with no home at all the cache and the log fall back
//! to the temporary directory while the config file is simply off: a
//! missing config file is normal, a missing log is not.

use std::path::{Path, PathBuf};

/// `$HOME`, unless unset or empty.
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The default config file: `$XDG_CONFIG_HOME/importfs/config.toml`, else
/// `~/.config/importfs/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("importfs").join("config.toml"))
}

/// `$XDG_STATE_HOME/importfs/importfs.log`, else
/// `~/.local/state/importfs/importfs.log` (macOS: `~/Library/Logs/importfs/`).
pub fn default_log_file() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(crate::platform::STATE_HOME)))
        .unwrap_or_else(std::env::temp_dir);
    base.join("importfs").join("importfs.log")
}

/// `~/x` → `$HOME/x`; a relative path → relative to `base` (the config
/// file's directory), so a config file can say `api_key_file = "key"`.
pub fn expand_path(raw: &Path, base: &Path) -> PathBuf {
    if let Some(rest) = raw.to_str().and_then(|r| r.strip_prefix("~/")) {
        if let Some(h) = home() {
            return h.join(rest);
        }
    }
    if raw.is_relative() {
        base.join(raw)
    } else {
        raw.to_owned()
    }
}
