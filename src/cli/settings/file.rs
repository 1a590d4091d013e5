//! The config file: `$XDG_CONFIG_HOME/importfs/config.toml`, or the one
//! `--config`, `-o config=` or `IMPORTFS_CONFIG` names. Its keys are the
//! settings' names ([`KEYS`]); serde reads each with the
//! `deserialize_with` of its entry in the settings list.
//!
//! Subtle: an unknown key or a value of the wrong type is an error naming
//! the key and the file, so a misspelt setting never goes unnoticed; to
//! name the key, each key is read on its own. `api_key` is refused with
//! its own message: a key in a config file is too easy to leak. A relative
//! path is relative to the file's folder, not to wherever importfs runs.

use super::layer::{ApiSettings, Layer, MountSettings, Source, KEYS};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// Read a config file into a layer.
pub fn load_file(path: &Path) -> Result<Layer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow!("the config file {} is not valid TOML: {e}", path.display()))?;
    let mut layer = Layer::default();
    for (key, value) in table {
        if key == "api_key" {
            bail!(
                "the config file {}: `api_key` is not allowed (a key in a config file is too easy to leak): \
                 put the key alone in a file readable only by you and set `api_key_file = \"/path/to/file\"`",
                path.display()
            );
        }
        if !KEYS.contains(&key.as_str()) {
            bail!(
                "the config file {}: unknown key `{key}` (known keys: {})",
                path.display(),
                KEYS.join(", ")
            );
        }
        let one = toml::Table::from_iter([(key.clone(), value)]);
        let bad = |e: toml::de::Error| {
            anyhow!(
                "the config file {}: `{key}` must be {}",
                path.display(),
                e.message()
            )
        };
        let api: ApiSettings = one.clone().try_into().map_err(bad)?;
        let mount: MountSettings = one.try_into().map_err(bad)?;
        let source = |_: &'static str| Source::File(path.to_owned());
        layer = layer.or(Layer::new(api, mount, source));
    }
    Ok(layer.in_dir(path.parent().unwrap_or(Path::new("/"))))
}
