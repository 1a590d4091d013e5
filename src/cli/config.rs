//! Settings and where each one comes from: flags, `-o` options, the
//! environment, the config file, defaults.
//!
//! Precedence, highest first: a long flag (`--api-url`), an `-o` option
//! (`-o api_url=...`), the environment (`IMPORTIO_API_URL`), the config file
//! (`$XDG_CONFIG_HOME/importfs/config.toml`), the built-in default. The API
//! key follows the same order with one twist: `IMPORTIO_API_KEY` beats an
//! `api_key_file` from the config file, but an explicit `--api-key-file` (or
//! `-o api_key_file=`) beats `IMPORTIO_API_KEY`. That way a key exported in a
//! shell overrides a machine-wide default, and a flag overrides both.
//!
//! The key itself is never a setting: only the file that holds it is, and
//! nothing here prints or logs it (`importfs config` shows `<redacted>`).
//!
//! Every mount flag is also an `-o` option so that an /etc/fstab line can say
//! everything (fstab has no other place for flags); see [`parse_options`].

use crate::api::ApiKey;
use crate::api::ClientConfig;
use crate::cli::settings::dirs::expand_path;
use crate::cli::settings::values::check_chunk_size;
use crate::cli::settings::{
    default_cache_dir, default_config_path, default_log_file, format_size, parse_chunk_size,
    parse_metrics_addr, parse_size, parse_streams, read_api_key, KEY_ENV, NO_KEY_HELP,
};
use crate::fs::core::FsConfig;
use crate::fs::FetchPlan;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Points at a config file other than the default one (tests, packaging).
pub const CONFIG_ENV: &str = "IMPORTFS_CONFIG";
/// The API's base URL, between the flags and the config file.
pub const URL_ENV: &str = "IMPORTIO_API_URL";

/// The keys a config file may hold, in the order `importfs config` prints them.
pub const FILE_KEYS: [&str; 12] = [
    "api_url",
    "api_key_file",
    "metadata_ttl",
    "cache_dir",
    "cache_size",
    "download_chunk_size",
    "download_streams",
    "read_only",
    "allow_delete",
    "allow_other",
    "log_file",
    "metrics_addr",
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A long flag, e.g. `--api-url`.
    Flag(&'static str),
    /// An `-o` option, e.g. `api_url`.
    MountOption(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The config file at this path.
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag {name}"),
            Source::MountOption(name) => write!(f, "option -o {name}"),
            Source::Env(name) => write!(f, "environment {name}"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    fn new(value: T, source: Source) -> Setting<T> {
        Setting { value, source }
    }
}

/// The settings one source gives: every field optional, so layers merge by
/// taking the first one that has a value.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub api_url: Option<Setting<String>>,
    pub api_key_file: Option<Setting<PathBuf>>,
    pub metadata_ttl: Option<Setting<Duration>>,
    pub cache_dir: Option<Setting<PathBuf>>,
    pub cache_size: Option<Setting<u64>>,
    pub download_chunk_size: Option<Setting<u64>>,
    pub download_streams: Option<Setting<usize>>,
    pub read_only: Option<Setting<bool>>,
    pub allow_delete: Option<Setting<bool>>,
    pub allow_other: Option<Setting<bool>>,
    pub log_file: Option<Setting<PathBuf>>,
    pub metrics_addr: Option<Setting<SocketAddr>>,
    /// Only from `-o foreground`: a config file that backgrounds nothing would
    /// hang mount(8).
    pub foreground: Option<Setting<bool>>,
}

impl Layer {
    /// Fill every field this layer lacks from `lower`.
    fn or(self, lower: Layer) -> Layer {
        Layer {
            api_url: self.api_url.or(lower.api_url),
            api_key_file: self.api_key_file.or(lower.api_key_file),
            metadata_ttl: self.metadata_ttl.or(lower.metadata_ttl),
            cache_dir: self.cache_dir.or(lower.cache_dir),
            cache_size: self.cache_size.or(lower.cache_size),
            download_chunk_size: self.download_chunk_size.or(lower.download_chunk_size),
            download_streams: self.download_streams.or(lower.download_streams),
            read_only: self.read_only.or(lower.read_only),
            allow_delete: self.allow_delete.or(lower.allow_delete),
            allow_other: self.allow_other.or(lower.allow_other),
            log_file: self.log_file.or(lower.log_file),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
            foreground: self.foreground.or(lower.foreground),
        }
    }
}

/// Where the API is and which key to use: shared by every command that talks to it.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiFlags {
    /// The API's base URL [env: IMPORTIO_API_URL] [default: https://api.import.io].
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// A file holding the API key; beats IMPORTIO_API_KEY, which beats `api_key_file` in the config file.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
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
    /// Refuse every write with EROFS and make no mutating API call (`-o ro`).
    #[arg(long)]
    pub read_only: bool,
    /// Let `rmdir` archive extractors and delete reports.
    #[arg(long)]
    pub allow_delete: bool,
    /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// How long listings and objects are cached, e.g. 5s, 1m [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub metadata_ttl: Option<Duration>,
    /// Where downloaded result files are kept [default: $XDG_CACHE_HOME/importfs].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The most the result cache may hold, e.g. 512M, 4G [default: 4G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: Option<u64>,
    /// Bytes per ranged GET of a result file, 64K to 1G [default: 8M].
    #[arg(long, value_name = "SIZE", value_parser = parse_chunk_size)]
    pub download_chunk_size: Option<u64>,
    /// Ranged GETs of one result file in flight at once, 1 to 16 [default: 4].
    #[arg(long, value_name = "N", value_parser = parse_streams)]
    pub download_streams: Option<usize>,
    /// Where a background mount writes its log [default: $XDG_STATE_HOME/importfs/importfs.log].
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Serve Prometheus metrics (GET /metrics) and a health check (GET
    /// /healthz) on this address, e.g. 127.0.0.1:9101; a bare port means
    /// loopback [default: off].
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// Mount options, comma-separated, as in /etc/fstab: every long flag as
    /// NAME or NAME=VALUE (api_url=, api_key_file=, metadata_ttl=, cache_dir=,
    /// cache_size=, download_chunk_size=, download_streams=, log_file=,
    /// metrics_addr=, config=, read_only, allow_delete, allow_other, foreground), `ro`; generic options (rw, dev, suid, nodev, nosuid, exec,
    /// noexec, auto, noauto, user, users, _netdev, nofail, x-systemd.*, ...)
    /// are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
}

/// What `-o` gave beyond the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOptions {
    pub verbose: u8,
    pub config: Option<PathBuf>,
}

/// Generic mount options: meaningful to mount(8), fstab or systemd, not to
/// us. mount.fuse3 adds `dev,suid` by itself, so these must pass silently.
const IGNORED_OPTIONS: &[&str] = &[
    "",
    "rw",
    "defaults",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "diratime",
    "nodiratime",
    "lazytime",
    "nolazytime",
    "sync",
    "async",
    "dirsync",
    "silent",
    "loud",
    "default_permissions",
    // libmount's bookkeeping for user mounts (`user=alice`, `uhelper=udisks2`).
    "uhelper",
];

fn parse_bool(name: &str, value: Option<&str>) -> Result<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => Ok(true),
        Some("false" | "no" | "off" | "0") => Ok(false),
        Some(other) => bail!("option {name}={other}: expected true or false"),
    }
}

fn need<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => bail!("option {name} needs a value: {name}=..."),
    }
}

/// Parse `-o` option strings (each comma-separated) into a layer.
///
/// Names take `_` or `-` (`api_url`, `api-url`). Later options win over
/// earlier ones. An unknown option is an error naming it, so that a typo in
/// fstab fails the mount instead of being silently dropped.
pub fn parse_options(options: &[String]) -> Result<(Layer, ParsedOptions)> {
    let mut layer = Layer::default();
    let mut extra = ParsedOptions::default();
    for opt in options.iter().flat_map(|o| o.split(',')) {
        let opt = opt.trim();
        let (raw_name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let name = raw_name.replace('-', "_");
        if IGNORED_OPTIONS.contains(&name.as_str())
            || name.starts_with("x_systemd.")
            || raw_name.starts_with("x-")
            || name == "comment"
        {
            continue;
        }
        macro_rules! set {
            ($field:ident, $key:literal, $value:expr) => {{
                layer.$field = Some(Setting::new($value, Source::MountOption($key)));
            }};
        }
        match name.as_str() {
            "api_url" => set!(api_url, "api_url", need(opt, value)?.to_owned()),
            "api_key_file" => set!(
                api_key_file,
                "api_key_file",
                PathBuf::from(need(opt, value)?)
            ),
            "metadata_ttl" => {
                let v = need(opt, value)?;
                let d = humantime::parse_duration(v)
                    .map_err(|e| anyhow!("option metadata_ttl={v}: {e} (e.g. 5s, 1m)"))?;
                set!(metadata_ttl, "metadata_ttl", d)
            }
            "cache_dir" => set!(cache_dir, "cache_dir", PathBuf::from(need(opt, value)?)),
            "cache_size" => {
                let v = need(opt, value)?;
                let n = parse_size(v).map_err(|e| anyhow!("option cache_size: {e}"))?;
                set!(cache_size, "cache_size", n)
            }
            "download_chunk_size" => {
                let v = need(opt, value)?;
                let n =
                    parse_chunk_size(v).map_err(|e| anyhow!("option download_chunk_size: {e}"))?;
                set!(download_chunk_size, "download_chunk_size", n)
            }
            "download_streams" => {
                let v = need(opt, value)?;
                let n = parse_streams(v).map_err(|e| anyhow!("option download_streams: {e}"))?;
                set!(download_streams, "download_streams", n)
            }
            "log_file" => set!(log_file, "log_file", PathBuf::from(need(opt, value)?)),
            "metrics_addr" => {
                let v = need(opt, value)?;
                let a = parse_metrics_addr(v).map_err(|e| anyhow!("option metrics_addr: {e}"))?;
                set!(metrics_addr, "metrics_addr", a)
            }
            "ro" => set!(read_only, "ro", parse_bool(opt, value)?),
            "read_only" => set!(read_only, "read_only", parse_bool(opt, value)?),
            "allow_delete" => set!(allow_delete, "allow_delete", parse_bool(opt, value)?),
            "allow_other" => set!(allow_other, "allow_other", parse_bool(opt, value)?),
            "foreground" => set!(foreground, "foreground", parse_bool(opt, value)?),
            "config" => extra.config = Some(PathBuf::from(need(opt, value)?)),
            "verbose" | "debug" => extra.verbose = extra.verbose.saturating_add(1),
            _ => bail!(
                "unknown mount option `{raw_name}`: importfs takes api_url=, api_key_file=, \
                 metadata_ttl=, cache_dir=, cache_size=, download_chunk_size=, download_streams=, \
                 log_file=, metrics_addr=, config=, ro, read_only, allow_delete, allow_other, foreground, verbose \
                 (see `importfs mount --help`)"
            ),
        }
    }
    Ok((layer, extra))
}

/// The long flags as a layer (only those given).
fn flags_layer(flags: &SettingsFlags) -> Layer {
    fn some<T>(v: Option<T>, flag: &'static str) -> Option<Setting<T>> {
        v.map(|v| Setting::new(v, Source::Flag(flag)))
    }
    fn on(v: bool, flag: &'static str) -> Option<Setting<bool>> {
        v.then(|| Setting::new(true, Source::Flag(flag)))
    }
    Layer {
        api_url: some(flags.api.api_url.clone(), "--api-url"),
        api_key_file: some(flags.api.api_key_file.clone(), "--api-key-file"),
        metadata_ttl: some(flags.metadata_ttl, "--metadata-ttl"),
        cache_dir: some(flags.cache_dir.clone(), "--cache-dir"),
        cache_size: some(flags.cache_size, "--cache-size"),
        download_chunk_size: some(flags.download_chunk_size, "--download-chunk-size"),
        download_streams: some(flags.download_streams, "--download-streams"),
        read_only: on(flags.read_only, "--read-only"),
        allow_delete: on(flags.allow_delete, "--allow-delete"),
        allow_other: on(flags.allow_other, "--allow-other"),
        log_file: some(flags.log_file.clone(), "--log-file"),
        metrics_addr: some(flags.metrics_addr, "--metrics-addr"),
        foreground: None,
    }
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

/// Read a config file into a layer. Unknown keys and wrong types are errors
/// naming the key and the file, so a misspelt setting never goes unnoticed.
pub fn load_file(path: &Path) -> Result<Layer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow!("the config file {} is not valid TOML: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let src = || Source::File(path.to_owned());
    let bad = |key: &str, want: &str| {
        anyhow!("the config file {}: `{key}` must be {want}", path.display())
    };
    let mut layer = Layer::default();
    for (key, value) in &table {
        let string = || value.as_str().ok_or_else(|| bad(key, "a string"));
        let boolean = || value.as_bool().ok_or_else(|| bad(key, "true or false"));
        match key.as_str() {
            "api_url" => layer.api_url = Some(Setting::new(string()?.to_owned(), src())),
            "api_key_file" => {
                layer.api_key_file = Some(Setting::new(expand_path(Path::new(string()?), base), src()))
            }
            "cache_dir" => layer.cache_dir = Some(Setting::new(expand_path(Path::new(string()?), base), src())),
            "log_file" => layer.log_file = Some(Setting::new(expand_path(Path::new(string()?), base), src())),
            "metadata_ttl" => {
                let d = match value {
                    toml::Value::Integer(n) if *n >= 0 => Duration::from_secs(*n as u64),
                    toml::Value::String(s) => humantime::parse_duration(s)
                        .map_err(|e| bad(key, &format!("a duration like \"5s\" or \"1m\" ({e})")))?,
                    _ => return Err(bad(key, "a duration like \"5s\" or a number of seconds")),
                };
                layer.metadata_ttl = Some(Setting::new(d, src()));
            }
            "cache_size" => {
                let n = match value {
                    toml::Value::Integer(n) if *n >= 0 => *n as u64,
                    toml::Value::String(s) => parse_size(s).map_err(|e| bad(key, &format!("a size like \"4G\" ({e})")))?,
                    _ => return Err(bad(key, "a size like \"4G\" or a number of bytes")),
                };
                layer.cache_size = Some(Setting::new(n, src()));
            }
            "download_chunk_size" => {
                let n = match value {
                    toml::Value::Integer(n) if *n >= 0 => {
                        check_chunk_size(*n as u64).map_err(|e| bad(key, &e))?
                    }
                    toml::Value::String(s) => parse_chunk_size(s).map_err(|e| bad(key, &e))?,
                    _ => return Err(bad(key, "a size like \"8M\" or a number of bytes")),
                };
                layer.download_chunk_size = Some(Setting::new(n, src()));
            }
            "download_streams" => {
                let n = match value {
                    toml::Value::Integer(n) => {
                        parse_streams(&n.to_string()).map_err(|e| bad(key, &e))?
                    }
                    _ => return Err(bad(key, "a number from 1 to 16")),
                };
                layer.download_streams = Some(Setting::new(n, src()));
            }
            "metrics_addr" => {
                let a = match value {
                    toml::Value::String(s) => parse_metrics_addr(s).map_err(|e| bad(key, &e))?,
                    toml::Value::Integer(n) => {
                        parse_metrics_addr(&n.to_string()).map_err(|e| bad(key, &e))?
                    }
                    _ => return Err(bad(key, "an address like \"127.0.0.1:9101\"")),
                };
                layer.metrics_addr = Some(Setting::new(a, src()));
            }
            "read_only" => layer.read_only = Some(Setting::new(boolean()?, src())),
            "allow_delete" => layer.allow_delete = Some(Setting::new(boolean()?, src())),
            "allow_other" => layer.allow_other = Some(Setting::new(boolean()?, src())),
            "api_key" => bail!(
                "the config file {}: `api_key` is not allowed (a key in a config file is too easy to leak): \
                 put the key alone in a file readable only by you and set `api_key_file = \"/path/to/file\"`",
                path.display()
            ),
            other => bail!(
                "the config file {}: unknown key `{other}` (known keys: {})",
                path.display(),
                FILE_KEYS.join(", ")
            ),
        }
    }
    Ok(layer)
}

/// Where the API key will come from (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file named by a flag, an option or the config file.
    File(PathBuf, Source),
    /// `IMPORTIO_API_KEY`.
    Env,
    Missing,
}

/// Every setting, resolved, with its source.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config_file: ConfigFile,
    pub api_url: Setting<String>,
    pub api_key_file: Option<Setting<PathBuf>>,
    pub key: KeySource,
    pub metadata_ttl: Setting<Duration>,
    pub cache_dir: Setting<PathBuf>,
    pub cache_size: Setting<u64>,
    pub download_chunk_size: Setting<u64>,
    pub download_streams: Setting<usize>,
    pub read_only: Setting<bool>,
    pub allow_delete: Setting<bool>,
    pub allow_other: Setting<bool>,
    pub log_file: Setting<PathBuf>,
    /// Off (`None`, the default) unless asked for.
    pub metrics_addr: Option<Setting<SocketAddr>>,
    pub foreground: Setting<bool>,
    /// `-o verbose` / `-o debug`, added to `-v`.
    pub verbose: u8,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Resolve the settings from flags, `-o` options, environment, config file and defaults.
pub fn resolve(flags: &SettingsFlags) -> Result<Effective> {
    let (options, extra) = parse_options(&flags.options)?;
    let cmdline = flags_layer(flags).or(options);

    let config_file = if flags.api.no_config {
        ConfigFile::Off
    } else if let Some(path) = flags.api.config.clone().or(extra.config.clone()) {
        ConfigFile::Loaded(path)
    } else if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        ConfigFile::Loaded(PathBuf::from(path))
    } else {
        match default_config_path() {
            Some(p) if p.exists() => ConfigFile::Loaded(p),
            Some(p) => ConfigFile::Absent(p),
            None => ConfigFile::Off,
        }
    };
    let file = match &config_file {
        ConfigFile::Loaded(p) => load_file(p)?,
        _ => Layer::default(),
    };
    let env = Layer {
        api_url: env_nonempty(URL_ENV).map(|u| Setting::new(u, Source::Env(URL_ENV))),
        ..Layer::default()
    };

    // The key: a command-line file beats the environment, which beats the file's.
    let key = if let Some(s) = &cmdline.api_key_file {
        KeySource::File(s.value.clone(), s.source.clone())
    } else if env_nonempty(KEY_ENV).is_some() {
        KeySource::Env
    } else if let Some(s) = &file.api_key_file {
        KeySource::File(s.value.clone(), s.source.clone())
    } else {
        KeySource::Missing
    };

    let all = cmdline.or(env).or(file);
    let or_default = |s: Option<Setting<bool>>| s.unwrap_or(Setting::new(false, Source::Default));
    Ok(Effective {
        config_file,
        api_url: all
            .api_url
            .unwrap_or_else(|| Setting::new(ClientConfig::default().base_url, Source::Default)),
        api_key_file: all.api_key_file,
        key,
        metadata_ttl: all.metadata_ttl.unwrap_or(Setting::new(
            FsConfig::default().metadata_ttl,
            Source::Default,
        )),
        cache_dir: all
            .cache_dir
            .unwrap_or_else(|| Setting::new(default_cache_dir(), Source::Default)),
        cache_size: all.cache_size.unwrap_or(Setting::new(
            FsConfig::default().cache_size,
            Source::Default,
        )),
        download_chunk_size: all.download_chunk_size.unwrap_or(Setting::new(
            FetchPlan::default().chunk_size,
            Source::Default,
        )),
        download_streams: all
            .download_streams
            .unwrap_or(Setting::new(FetchPlan::default().streams, Source::Default)),
        read_only: or_default(all.read_only),
        allow_delete: or_default(all.allow_delete),
        allow_other: or_default(all.allow_other),
        log_file: all
            .log_file
            .unwrap_or_else(|| Setting::new(default_log_file(), Source::Default)),
        metrics_addr: all.metrics_addr,
        foreground: or_default(all.foreground),
        verbose: extra.verbose,
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
    /// Read the API key from wherever it comes from.
    pub fn api_key(&self) -> Result<ApiKey> {
        match &self.key {
            KeySource::File(path, source) => read_api_key(Some(path))
                .with_context(|| format!("the API key file comes from {source}")),
            KeySource::Env => read_api_key(None),
            KeySource::Missing => bail!("{NO_KEY_HELP}"),
        }
    }

    /// The lines of `importfs config`: `key = value  # source`. The key is
    /// only ever `<redacted>`, `not set` or `unreadable`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String, src: String| {
            out.push_str(&format!("{k} = {v}  # {src}\n"));
        };
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        match &self.config_file {
            ConfigFile::Loaded(p) => line("config_file", q(p), "read".into()),
            ConfigFile::Absent(p) => line("config_file", q(p), "not found, defaults used".into()),
            ConfigFile::Off => line(
                "config_file",
                "none".into(),
                "--no-config or no home directory".into(),
            ),
        }
        line(
            "api_url",
            format!("{:?}", self.api_url.value),
            self.api_url.source.to_string(),
        );
        let (key_value, key_src) = match &self.key {
            KeySource::Missing => (
                "not set".to_owned(),
                format!("set {KEY_ENV} or api_key_file"),
            ),
            KeySource::Env => match self.api_key() {
                Ok(_) => ("<redacted>".to_owned(), format!("environment {KEY_ENV}")),
                Err(_) => ("not set".to_owned(), format!("{KEY_ENV} is empty")),
            },
            KeySource::File(p, src) => match self.api_key() {
                Ok(_) => (
                    "<redacted>".to_owned(),
                    format!("read from {} ({src})", p.display()),
                ),
                Err(e) => ("unreadable".to_owned(), format!("{}", e.root_cause())),
            },
        };
        line("api_key", key_value, key_src);
        match &self.api_key_file {
            Some(s) => {
                let mut src = s.source.to_string();
                if self.key == KeySource::Env {
                    src.push_str(&format!("; not used: {KEY_ENV} wins"));
                }
                line("api_key_file", q(&s.value), src)
            }
            None => line(
                "api_key_file",
                "not set".into(),
                Source::Default.to_string(),
            ),
        }
        line(
            "metadata_ttl",
            format!(
                "{:?}",
                humantime::format_duration(self.metadata_ttl.value).to_string()
            ),
            self.metadata_ttl.source.to_string(),
        );
        line(
            "cache_dir",
            q(&self.cache_dir.value),
            self.cache_dir.source.to_string(),
        );
        line(
            "cache_size",
            format!("{:?}", format_size(self.cache_size.value)),
            self.cache_size.source.to_string(),
        );
        line(
            "download_chunk_size",
            format!("{:?}", format_size(self.download_chunk_size.value)),
            self.download_chunk_size.source.to_string(),
        );
        line(
            "download_streams",
            self.download_streams.value.to_string(),
            self.download_streams.source.to_string(),
        );
        for (k, s) in [
            ("read_only", &self.read_only),
            ("allow_delete", &self.allow_delete),
            ("allow_other", &self.allow_other),
        ] {
            line(k, s.value.to_string(), s.source.to_string());
        }
        line(
            "log_file",
            q(&self.log_file.value),
            self.log_file.source.to_string(),
        );
        match &self.metrics_addr {
            Some(a) => line(
                "metrics_addr",
                format!("{:?}", a.value.to_string()),
                a.source.to_string(),
            ),
            None => line("metrics_addr", "off".into(), Source::Default.to_string()),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Result<(Layer, ParsedOptions)> {
        parse_options(&[s.to_owned()])
    }

    #[test]
    fn options_map_to_settings() {
        let (l, extra) = opts(
            "api_key_file=/etc/k,ro,allow_other,dev,suid,rw,nofail,_netdev,x-systemd.automount,\
             api-url=http://x,metadata_ttl=1m,cache_size=1G,cache_dir=/c,log_file=/l,config=/f,verbose",
        )
        .unwrap();
        assert_eq!(l.api_key_file.unwrap().value, PathBuf::from("/etc/k"));
        assert!(l.read_only.unwrap().value);
        assert!(l.allow_other.unwrap().value);
        assert_eq!(l.api_url.unwrap().value, "http://x");
        assert_eq!(l.metadata_ttl.unwrap().value, Duration::from_secs(60));
        assert_eq!(l.cache_size.unwrap().value, 1 << 30);
        assert_eq!(l.cache_dir.unwrap().value, PathBuf::from("/c"));
        assert_eq!(l.log_file.unwrap().value, PathBuf::from("/l"));
        assert_eq!(extra.config, Some(PathBuf::from("/f")));
        assert_eq!(extra.verbose, 1);
        assert!(l.allow_delete.is_none());
    }

    #[test]
    fn options_reject_typos_and_bad_values() {
        let e = opts("ro,api_ur=http://x").unwrap_err().to_string();
        assert!(e.contains("`api_ur`"), "{e}");
        assert!(opts("metadata_ttl=soon").is_err());
        assert!(opts("cache_size=12Q").is_err());
        assert!(opts("api_key_file").is_err());
        assert!(opts("read_only=maybe").is_err());
        assert!(!opts("read_only=false").unwrap().0.read_only.unwrap().value);
    }

    #[test]
    fn download_settings_parse_and_are_bounded() {
        let (l, _) = opts("download_chunk_size=16M,download-streams=8").unwrap();
        assert_eq!(l.download_chunk_size.unwrap().value, 16 << 20);
        assert_eq!(l.download_streams.unwrap().value, 8);
        for bad in [
            "download_chunk_size=1K",
            "download_chunk_size=2G",
            "download_chunk_size=lots",
            "download_streams=0",
            "download_streams=17",
            "download_streams=-1",
        ] {
            assert!(opts(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "download_chunk_size = \"2M\"\ndownload_streams = 2\n",
        )
        .unwrap();
        let l = load_file(&path).unwrap();
        assert_eq!(l.download_chunk_size.unwrap().value, 2 << 20);
        assert_eq!(l.download_streams.unwrap().value, 2);
        for bad in ["download_chunk_size = 100", "download_streams = \"4\""] {
            std::fs::write(&path, bad).unwrap();
            assert!(load_file(&path).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_addr_is_loopback_unless_named() {
        let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(parse_metrics_addr("9101"), Ok(lo(9101)));
        assert_eq!(parse_metrics_addr(":9101"), Ok(lo(9101)));
        assert_eq!(parse_metrics_addr("localhost:9101"), Ok(lo(9101)));
        assert_eq!(
            parse_metrics_addr("0.0.0.0:9101"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 9101)))
        );
        assert_eq!(
            parse_metrics_addr("[::1]:9101").unwrap().to_string(),
            "[::1]:9101"
        );
        for bad in ["", "host:9101", "127.0.0.1", "127.0.0.1:99999", "x"] {
            assert!(parse_metrics_addr(bad).is_err(), "{bad}");
        }
        let (l, _) = opts("metrics_addr=127.0.0.1:9200").unwrap();
        assert_eq!(l.metrics_addr.unwrap().value, lo(9200));
        assert!(opts("metrics_addr").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for (text, want) in [
            ("metrics_addr = \"127.0.0.1:9300\"", lo(9300)),
            ("metrics_addr = 9301", lo(9301)),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(load_file(&path).unwrap().metrics_addr.unwrap().value, want);
        }
        std::fs::write(&path, "metrics_addr = true").unwrap();
        assert!(load_file(&path).is_err());
    }

    #[test]
    fn config_file_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "api_url = \"http://a\"\napi_key_file = \"key\"\nmetadata_ttl = 30\ncache_size = \"1G\"\nread_only = true\n",
        )
        .unwrap();
        let l = load_file(&path).unwrap();
        assert_eq!(l.api_url.unwrap().value, "http://a");
        assert_eq!(l.api_key_file.unwrap().value, dir.path().join("key"));
        assert_eq!(l.metadata_ttl.unwrap().value, Duration::from_secs(30));
        assert_eq!(l.cache_size.unwrap().value, 1 << 30);
        assert!(l.read_only.unwrap().value);

        std::fs::write(&path, "api_url = \"http://a\"\ncache_sise = \"1G\"\n").unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(e.contains("unknown key `cache_sise`"), "{e}");
        std::fs::write(&path, "read_only = \"yes\"\n").unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(e.contains("`read_only` must be true or false"), "{e}");
        std::fs::write(&path, "api_key = \"secret\"\n").unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(e.contains("not allowed") && !e.contains("secret"), "{e}");
    }
}
