//! The list of settings, each declared once, and the layers they come in.
//!
//! One entry of `settings!` below is a whole setting: its doc comment is
//! its `--help` text, its `#[arg]` its flag (and, through the flag, its
//! `-o` option), its field name its config-file key and `importfs config`
//! line, its `#[serde]` how the file spells it, and `= EXPR` its default.
//! A new setting is one more entry, plus the code that uses it.
//!
//! Subtle: every field is an `Option`, because a source that says nothing
//! must leave the lower ones be, while `read_only = false` in the config
//! file is a value: it beats the default, and `importfs config` names the
//! file. So a switch is `Option<bool>` with `num_args = 0`: a bare
//! `--read-only` is `Some(true)`, no flag is `None` (clap's usual `bool`
//! could not tell "not given" from "false").
//! Defaults are read from `FsConfig`, `FetchPlan` and `ClientConfig`, so
//! that the CLI and the library cannot disagree; only the cache dir (the
//! XDG one here), the log file and allow_other are the CLI's own.

use super::dirs::default_log_file;
use super::values::{
    from_toml, parse_backend, parse_chunk_size, parse_duration, parse_metrics_addr,
    parse_poll_interval, parse_proxy, parse_size, parse_streams, parse_switch, Backend, ProxyUrl,
    Value,
};
use crate::api::ClientConfig;
use crate::fs::core::FsConfig;
use crate::fs::FetchPlan;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A long flag, e.g. `--api-url`.
    Flag(String),
    /// An `-o` option, e.g. `api_url`.
    MountOption(String),
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
    pub fn new(value: T, source: Source) -> Setting<T> {
        Setting { value, source }
    }
}

/// A setting's long flag: `download_streams` → `--download-streams`.
pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Declares the settings. From groups of `NAME: TYPE [= DEFAULT]` entries it
/// makes, for each group, a struct of `Option<TYPE>` fields with the
/// entries' attributes (clap reads it as flags, serde as the config file),
/// and over all groups:
/// - [`Layer`]: what one source says, each value with its [`Source`];
/// - [`Settings`]: the values in force; an entry with no default stays an
///   `Option` there;
/// - [`KEYS`]: the names in order, which is the order `importfs config`
///   prints them and the config file's list of known keys.
macro_rules! settings {
    ($(
        $(#[$group_attr:meta])*
        $group:ident: $Group:ident {
            $(
                $(#[$attr:meta])*
                $name:ident: $T:ty $(= $default:expr)?,
            )*
        }
    )*) => {
        $(
            $(#[$group_attr])*
            #[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
            #[serde(default)]
            pub struct $Group {
                $( $(#[$attr])* pub $name: Option<$T>, )*
            }
        )*

        /// Every setting as one source gives it: `None` where it says nothing.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Layer {
            $($( pub $name: Option<Setting<$T>>, )*)*
        }

        /// Every setting in force.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $($( pub $name: settings!(@in_force $T $(, $default)?), )*)*
        }

        /// The settings' names: the config file's keys, in the order
        /// `importfs config` prints them.
        pub const KEYS: &[&str] = &[$($(stringify!($name),)*)*];

        impl Layer {
            /// What these groups say, each value from `source(its name)`.
            pub fn new($($group: $Group,)* source: impl Fn(&'static str) -> Source) -> Layer {
                Layer {
                    $($( $name: $group.$name.map(|v| Setting::new(v, source(stringify!($name)))), )*)*
                }
            }

            /// The built-in defaults.
            pub fn defaults() -> Layer {
                Layer {
                    $($( $name: settings!(@default $($default)?), )*)*
                }
            }

            /// Fill every setting this layer lacks from `lower`.
            pub fn or(self, lower: Layer) -> Layer {
                Layer {
                    $($( $name: self.$name.or(lower.$name), )*)*
                }
            }

            /// The values of a config file in `dir`: its relative paths made
            /// relative to `dir`.
            pub fn in_dir(self, dir: &Path) -> Layer {
                Layer {
                    $($( $name: self.$name.map(|s| Setting::new(s.value.in_dir(dir), s.source)), )*)*
                }
            }

            /// Each setting's name, with its value as `importfs config` shows
            /// it and its source; `None` where unset.
            pub fn rows(&self) -> Vec<(&'static str, Option<(String, &Source)>)> {
                vec![
                    $($( (
                        stringify!($name),
                        self.$name.as_ref().map(|s| (s.value.shown(), &s.source)),
                    ), )*)*
                ]
            }

            /// The settings in force: this layer's, else the defaults.
            pub fn settings(&self) -> Settings {
                Settings {
                    $($( $name: settings!(@value self.$name $(, $default)?), )*)*
                }
            }
        }

        impl Settings {
            /// Every setting as flags: a command line that gives exactly these.
            pub fn to_flags(&self) -> Vec<OsString> {
                let mut out = Vec::new();
                $($(
                    settings!(@flag out, &self.$name, stringify!($name) $(, $default)?);
                )*)*
                out
            }
        }

        impl Default for Settings {
            fn default() -> Settings {
                Layer::default().settings()
            }
        }
    };
    // The pieces that differ between an entry with a default and one without.
    (@in_force $T:ty) => { Option<$T> };
    (@in_force $T:ty, $default:expr) => { $T };
    (@default) => { None };
    (@default $default:expr) => { Some(Setting::new($default, Source::Default)) };
    (@value $s:expr) => { $s.as_ref().map(|s| s.value.clone()) };
    (@value $s:expr, $default:expr) => { $s.as_ref().map_or_else(|| $default, |s| s.value.clone()) };
    (@flag $out:ident, $v:expr, $name:expr) => {
        if let Some(v) = $v {
            $out.extend(v.to_flag(&flag_name($name)));
        }
    };
    (@flag $out:ident, $v:expr, $name:expr, $default:expr) => {
        $out.extend($v.to_flag(&flag_name($name)))
    };
}

settings! {
    /// Where the API is and which key to use: every command that talks to it.
    api: ApiSettings {
        /// The API's base URL [env: IMPORTIO_API_URL] [default: https://api.import.io].
        #[arg(long, value_name = "URL")]
        #[serde(deserialize_with = "from_toml::string")]
        api_url: String = ClientConfig::default().base_url,
        /// A file holding the API key; beats IMPORTIO_API_KEY, which beats `api_key_file` in the config file.
        #[arg(long, value_name = "FILE")]
        #[serde(deserialize_with = "from_toml::path")]
        api_key_file: PathBuf,
        /// A PEM file of CA certificates to trust besides the system's store
        /// (one, several, or a bundle), e.g. a company TLS proxy's root.
        #[arg(long, value_name = "FILE")]
        #[serde(deserialize_with = "from_toml::path")]
        ca_cert: PathBuf,
        /// A proxy for every API request, e.g. http://proxy:3128 (with
        /// user:password@ if it needs them); beats HTTPS_PROXY and the like,
        /// NO_PROXY still applies.
        #[arg(long, value_name = "URL", value_parser = parse_proxy)]
        #[serde(deserialize_with = "from_toml::proxy")]
        proxy: ProxyUrl,
    }

    /// What a mount does and keeps.
    mount: MountSettings {
        /// How long listings and objects are cached, e.g. 5s, 1m [default: 5s].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        #[serde(deserialize_with = "from_toml::duration")]
        metadata_ttl: Duration = FsConfig::default().metadata_ttl,
        /// Where downloaded result files are kept [default: $XDG_CACHE_HOME/importfs].
        #[arg(long, value_name = "DIR")]
        #[serde(deserialize_with = "from_toml::path")]
        cache_dir: PathBuf = FsConfig::default().cache_dir,
        /// The most the result cache may hold, e.g. 512M, 4G [default: 4G].
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        #[serde(deserialize_with = "from_toml::size")]
        cache_size: u64 = FsConfig::default().cache_size,
        /// The most that result files read through memory may hold together,
        /// e.g. 64M, 1G: files that do not fit the disk cache (larger than
        /// --cache-size, or the disk is full) are streamed through it [default: 256M].
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        #[serde(deserialize_with = "from_toml::size")]
        max_memory: u64 = FsConfig::default().max_memory,
        /// Bytes per ranged GET of a result file, 64K to 1G [default: 8M].
        #[arg(long, value_name = "SIZE", value_parser = parse_chunk_size)]
        #[serde(deserialize_with = "from_toml::chunk_size")]
        download_chunk_size: u64 = FetchPlan::default().chunk_size,
        /// Ranged GETs of one result file in flight at once, 1 to 16 [default: 4].
        #[arg(long, value_name = "N", value_parser = parse_streams)]
        #[serde(deserialize_with = "from_toml::streams")]
        download_streams: usize = FetchPlan::default().streams,
        /// Refuse every write with EROFS and make no mutating API call (`-o ro`).
        #[arg(long, num_args = 0, default_missing_value = "true", value_parser = parse_switch)]
        #[serde(deserialize_with = "from_toml::switch")]
        read_only: bool = FsConfig::default().read_only,
        /// Let `rmdir` archive extractors and delete reports.
        #[arg(long, num_args = 0, default_missing_value = "true", value_parser = parse_switch)]
        #[serde(deserialize_with = "from_toml::switch")]
        allow_delete: bool = FsConfig::default().allow_delete,
        /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf).
        #[arg(long, num_args = 0, default_missing_value = "true", value_parser = parse_switch)]
        #[serde(deserialize_with = "from_toml::switch")]
        allow_other: bool = false,
        /// Where a background mount writes its log [default: $XDG_STATE_HOME/importfs/importfs.log].
        #[arg(long, value_name = "FILE")]
        #[serde(deserialize_with = "from_toml::path")]
        log_file: PathBuf = default_log_file(),
        /// Serve Prometheus metrics (GET /metrics) and a health check (GET
        /// /healthz) on this address, e.g. 127.0.0.1:9101; a bare port means
        /// loopback [default: off].
        #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
        #[serde(deserialize_with = "from_toml::metrics_addr")]
        metrics_addr: SocketAddr,
        /// How often the mount asks for new and changed runs, which become
        /// events (.importfs/events, `importfs watch`) and show in listings at
        /// once, e.g. 30s; at least 1s, 0 turns it off [default: 30s].
        #[arg(long, value_name = "DURATION", value_parser = parse_poll_interval)]
        #[serde(deserialize_with = "from_toml::duration")]
        poll_interval: Duration = Duration::from_secs(30),
        /// How the mount reaches the kernel: fuse (the default on Linux), or
        /// nfs (a loopback NFSv3 server mounted with the OS's own NFS client,
        /// no kernel extension; the default on macOS).
        #[arg(long, value_name = "BACKEND", value_parser = parse_backend)]
        #[serde(deserialize_with = "from_toml::backend")]
        backend: Backend = Backend::default_for_os(),
        /// Run the NFS backend's mount and umount commands (never the server)
        /// through sudo, for an OS whose NFS mounts need root (Linux).
        #[arg(long, num_args = 0, default_missing_value = "true", value_parser = parse_switch)]
        #[serde(deserialize_with = "from_toml::switch")]
        sudo: bool = false,
    }
}
