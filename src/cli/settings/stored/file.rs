//! The key file, where `importfs login` keeps keys when there is no secret
//! store (a server, a container, no session bus):
//! `$XDG_CONFIG_HOME/importfs/key`, else `~/.config/importfs/key`, next to
//! the config file. It is a small TOML table, one key per API URL, so that
//! the emulator and the real service can each have one:
//!
//! ```toml
//! # API keys stored by `importfs login`; `importfs logout` removes them.
//! "https://api.import.io" = "KEY"
//! "http://127.0.0.1:8080" = "ANOTHER KEY"
//! ```
//!
//! Subtle: the file is written whole, to a new 0600 file in the same
//! (0700) directory that is then renamed over the old one, so that no reader
//! ever sees half a file and the key is never, even for a moment, in a file
//! others can read; the directory is made 0700 even when it already existed
//! (it is ours: it holds the config file). A file that does not parse is an
//! error that names the file but never quotes it: TOML's own messages show
//! the offending line, which would be a key. The last key removed removes
//! the file.

use super::super::dirs::default_config_path;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first line of the file.
const HEADER: &str = "# API keys stored by `importfs login`, one per API URL; \
                      `importfs logout` removes them.\n";

/// Where the key file is, or `None` with no home directory to put it in.
pub fn path() -> Option<PathBuf> {
    Some(default_config_path()?.with_file_name("key"))
}

/// The key stored for `url`, if the file has one.
pub fn get(path: &Path, url: &str) -> Result<Option<String>> {
    Ok(read_map(path)?.remove(url))
}

/// Store `key` for `url`, replacing any key it had.
pub fn set(path: &Path, url: &str, key: &str) -> Result<()> {
    let mut map = read_map(path)?;
    map.insert(url.to_owned(), key.to_owned());
    write_map(path, &map)
}

/// Remove the key of `url`; whether there was one.
pub fn remove(path: &Path, url: &str) -> Result<bool> {
    let mut map = read_map(path)?;
    if map.remove(url).is_none() {
        return Ok(false);
    }
    if map.is_empty() {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    } else {
        write_map(path, &map)?;
    }
    Ok(true)
}

/// The file's table; empty when there is no file.
fn read_map(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match toml::from_str::<BTreeMap<String, String>>(&text) {
        Ok(map) => Ok(map),
        // Not the parser's message: it quotes the line, which may be a key.
        Err(_) => bail!(
            "{} is not a table of \"API URL\" = \"KEY\" lines: fix or remove it",
            path.display()
        ),
    }
}

/// Write the table to `path`: a new 0600 file in a 0700 directory, renamed
/// over the old one.
fn write_map(path: &Path, map: &BTreeMap<String, String>) -> Result<()> {
    let dir = path.parent().context("the key file has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
    let body = toml::to_string(map).context("cannot write the key table")?;
    let tmp = dir.join(format!(".key.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(HEADER.as_bytes())?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_per_url_replaced_and_removed_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("importfs").join("key");
        assert_eq!(get(&path, "http://a").unwrap(), None);
        set(&path, "http://a", "one").unwrap();
        set(&path, "http://b", "two \"quoted\"").unwrap();
        set(&path, "http://a", "three").unwrap();
        assert_eq!(get(&path, "http://a").unwrap().as_deref(), Some("three"));
        assert_eq!(
            get(&path, "http://b").unwrap().as_deref(),
            Some("two \"quoted\"")
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(remove(&path, "http://a").unwrap());
        assert!(!remove(&path, "http://a").unwrap());
        assert!(path.exists());
        assert!(remove(&path, "http://b").unwrap());
        assert!(!path.exists(), "the last key removed removes the file");
    }

    #[test]
    fn a_broken_file_is_named_but_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "\"http://a\" = \"secret-key-value\n").unwrap();
        let e = format!("{:#}", get(&path, "http://a").unwrap_err());
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(!e.contains("secret-key-value"), "{e}");
    }
}
