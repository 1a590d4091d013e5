//! Settings and where each one comes from: flags, `-o` options, the
//! environment, the config file, defaults.
//!
//! Precedence, highest first: a long flag (`--api-url`), an `-o` option
//! (`-o api_url=...`), the environment (`IMPORTIO_API_URL`), the config file
//! (`$XDG_CONFIG_HOME/importfs/config.toml`), the built-in default. The API
//! key follows the same order with one twist: `IMPORTIO_API_KEY` beats an
//! `api_key_file` from the config file, but an explicit `--api-key-file` (or
//! `-o api_key_file=`) beats `IMPORTIO_API_KEY`. That way a key exported in a
//! shell overrides a machine-wide default, and a flag overrides both. Last
//! comes the key `importfs login` stored for the API URL in force
//! ([`super::stored`]), looked up only when a command needs the key.
//!
//! The key itself is never a setting: only the file that holds it is, and
//! nothing here prints or logs it (`importfs config` shows `<redacted>`).

use super::dirs::default_config_path;
use super::file::load_file;
use super::key::{env_key, read_api_key, NO_KEY_HELP};
use super::layer::{flag_name, ApiSettings, Layer, MountSettings, Setting, Settings, Source};
use super::options::{parse_options, ParsedOptions};
use super::stored::{self, Place};
use crate::api::ApiKey;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Points at a config file other than the default one (tests, packaging).
pub const CONFIG_ENV: &str = "IMPORTFS_CONFIG";
/// The API's base URL, between the flags and the config file.
pub const URL_ENV: &str = "IMPORTIO_API_URL";

/// Where the API is and which key to use: shared by every command that talks to it.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiFlags {
    #[command(flatten)]
    pub settings: ApiSettings,
    /// The config file [env: IMPORTFS_CONFIG] [default: $XDG_CONFIG_HOME/importfs/config.toml].
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Ignore the config file.
    #[arg(long)]
    pub no_config: bool,
}

/// The mount settings as flags; `importfs mount` and `importfs config` share them.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsFlags {
    #[command(flatten)]
    pub api: ApiFlags,
    #[command(flatten)]
    pub mount: MountSettings,
    /// Mount options, comma-separated, as in /etc/fstab: every long flag
    /// above as NAME=VALUE (a switch as NAME, or NAME=false), `ro` for
    /// read_only, config=FILE, foreground, verbose; generic options (rw,
    /// dev, suid, nodev, nosuid, exec, noexec, auto, noauto, user, users,
    /// _netdev, nofail, x-systemd.*, ...) are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
}

/// Which config file was used, and whether it was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// Read from this path.
    Loaded(PathBuf),
    /// The default path, which does not exist: that is fine.
    Absent(PathBuf),
    /// `--no-config`, or no home directory to look in.
    Off,
}

/// Where the API key will come from (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file named by a flag, an option or the config file.
    File(PathBuf, Source),
    /// `IMPORTIO_API_KEY`.
    Env,
    /// None of those: the key `importfs login` stored for the API URL, if any.
    Stored,
}

/// Every setting, resolved, with its source.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config_file: ConfigFile,
    pub key: KeySource,
    /// Every setting that has a value, from the source that won; the
    /// defaults included, so only settings without one are `None`.
    pub layer: Layer,
    /// What `-o` said beyond the settings (`verbose` adds to `-v`).
    pub options: ParsedOptions,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The config file to read: a flag or `-o config=`, else the environment,
/// else the default path if it exists.
fn config_file(api: &ApiFlags, options: &ParsedOptions) -> ConfigFile {
    if api.no_config {
        ConfigFile::Off
    } else if let Some(path) = api.config.clone().or(options.config.clone()) {
        ConfigFile::Loaded(path)
    } else if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        ConfigFile::Loaded(PathBuf::from(path))
    } else {
        match default_config_path() {
            Some(p) if p.exists() => ConfigFile::Loaded(p),
            Some(p) => ConfigFile::Absent(p),
            None => ConfigFile::Off,
        }
    }
}

/// The key: a command-line file beats the environment, which beats the
/// file's, which beats the stored key.
fn key_source(cmdline: &Layer, file: &Layer) -> KeySource {
    if let Some(s) = &cmdline.api_key_file {
        KeySource::File(s.value.clone(), s.source.clone())
    } else if env_key().is_some() {
        KeySource::Env
    } else if let Some(s) = &file.api_key_file {
        KeySource::File(s.value.clone(), s.source.clone())
    } else {
        KeySource::Stored
    }
}

/// Resolve the settings from flags, `-o` options, environment, config file and defaults.
pub fn resolve(flags: &SettingsFlags) -> Result<Effective> {
    let (options, extra) = parse_options(&flags.options)?;
    let given = Layer::new(flags.api.settings.clone(), flags.mount.clone(), |name| {
        Source::Flag(flag_name(name))
    });
    let cmdline = given.or(options);
    let config_file = config_file(&flags.api, &extra);
    let file = match &config_file {
        ConfigFile::Loaded(p) => load_file(p)?,
        _ => Layer::default(),
    };
    let env = Layer {
        api_url: env_nonempty(URL_ENV).map(|u| Setting::new(u, Source::Env(URL_ENV))),
        ..Layer::default()
    };
    let key = key_source(&cmdline, &file);
    Ok(Effective {
        config_file,
        key,
        layer: cmdline.or(env).or(file).or(Layer::defaults()),
        options: extra,
    })
}

/// Resolve only what talking to the API needs (for `importfs run`).
pub fn resolve_api(api: &ApiFlags) -> Result<Effective> {
    resolve(&SettingsFlags {
        api: api.clone(),
        ..SettingsFlags::default()
    })
}

impl Effective {
    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.layer.settings()
    }

    /// Read the API key from wherever it comes from.
    pub fn api_key(&self) -> Result<ApiKey> {
        match &self.key {
            KeySource::File(path, source) => read_api_key(Some(path))
                .with_context(|| format!("the API key file comes from {source}")),
            KeySource::Env => read_api_key(None),
            KeySource::Stored => match self.stored_key()? {
                Some((key, _)) => Ok(key),
                None => bail!("{NO_KEY_HELP}"),
            },
        }
    }

    /// The key `importfs login` stored for the API URL in force, and where.
    pub fn stored_key(&self) -> Result<Option<(ApiKey, Place)>> {
        stored::lookup(&self.settings().api_url)
    }
}
