//! `-o NAME[=VALUE],...`: mount options, as an /etc/fstab line or mount(8)
//! gives them. Every setting's flag is also an option, so that fstab, which
//! has no other place for flags, can say everything.
//!
//! Each option is turned into the flag it names (`cache_size=1G` becomes
//! `--cache-size=1G`, as mountpoint-s3 does for fstab) and parsed by clap
//! alone, with the flag's own parser, so the two forms cannot drift apart.
//! One at a time, so that an error names the option that caused it, and
//! so that a later option wins over an earlier one.
//!
//! Subtle: a switch takes a value here (`ro=false`), which its flag does
//! not; an unknown option is an error, so that a typo in fstab fails the
//! mount instead of being dropped; but the generic options mount(8),
//! mount.fuse3 and systemd read (`dev,suid`, `_netdev`, `x-systemd.*`) pass
//! silently: they are meant for those tools, and mount.fuse3 adds some of
//! them by itself.

use super::layer::{flag_name, ApiSettings, Layer, MountSettings, Source};
use super::values::parse_switch;
use anyhow::{anyhow, bail, Result};
use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;

/// What `-o` gave beyond the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOptions {
    pub verbose: u8,
    pub config: Option<PathBuf>,
    /// Only from `-o foreground`: a config file that backgrounds nothing would
    /// hang mount(8).
    pub foreground: bool,
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

fn ignored(raw_name: &str, name: &str) -> bool {
    IGNORED_OPTIONS.contains(&name)
        || name.starts_with("x_systemd.")
        || raw_name.starts_with("x-")
        || name == "comment"
}

/// Everything `-o` can say: the settings, and three words of its own.
#[derive(Debug, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Words {
    #[command(flatten)]
    api: ApiSettings,
    #[command(flatten)]
    mount: MountSettings,
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, num_args = 0, default_missing_value = "true", value_parser = parse_switch)]
    foreground: Option<bool>,
    #[arg(long, alias = "debug", action = ArgAction::Count)]
    verbose: u8,
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `NAME=VALUE`, the value required.
    Valued,
    /// `NAME` or `NAME=BOOL`.
    Switch,
    /// `NAME`, any value ignored (`verbose`).
    Counted,
}

/// A switch's flag takes no value (`num_args = 0`), and here one at most.
fn kind(arg: &Arg) -> Kind {
    if matches!(arg.get_action(), ArgAction::Count) {
        Kind::Counted
    } else if arg.get_num_args().is_some_and(|n| n.min_values() == 0) {
        Kind::Switch
    } else {
        Kind::Valued
    }
}

/// An argument's option names, with `_`: its aliases (`ro` for
/// read_only), then its long name. `all` adds the hidden aliases (`debug`).
fn names(arg: &Arg, all: bool) -> Vec<String> {
    let aliases = if all {
        arg.get_all_aliases()
    } else {
        arg.get_visible_aliases()
    };
    let long = arg.get_long().into_iter();
    let names = aliases.unwrap_or_default().into_iter().chain(long);
    names.map(|n| n.replace('-', "_")).collect()
}

/// The words as clap arguments, with `ro` for read_only and a value
/// allowed after every switch.
fn words() -> clap::Command {
    Words::command()
        .mut_arg("read_only", |a| a.visible_alias("ro"))
        .mut_args(|a| match kind(&a) {
            Kind::Switch => a.num_args(0..=1),
            _ => a,
        })
}

/// The error for an option that is not one: it lists those that are, in
/// the order of [`Words`] (`words()` moved read_only to the end).
fn unknown(cmd: &clap::Command, raw_name: &str) -> anyhow::Error {
    let mut valued = Vec::new();
    let mut bare = Vec::new();
    for id in Words::command().get_arguments().map(Arg::get_id) {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id) else {
            continue;
        };
        match kind(arg) {
            Kind::Valued => valued.extend(names(arg, false).into_iter().map(|n| n + "=")),
            _ => bare.extend(names(arg, false)),
        }
    }
    valued.extend(bare);
    anyhow!(
        "unknown mount option `{raw_name}`: importfs takes {} (see `importfs mount --help`)",
        valued.join(", ")
    )
}

/// Parse `-o` option strings (each comma-separated) into a layer.
///
/// Names take `_` or `-` (`api_url`, `api-url`). Later options win over
/// earlier ones.
pub fn parse_options(options: &[String]) -> Result<(Layer, ParsedOptions)> {
    let cmd = words();
    let mut layer = Layer::default();
    let mut extra = ParsedOptions::default();
    for opt in options.iter().flat_map(|o| o.split(',')) {
        let opt = opt.trim();
        let (raw_name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let name = raw_name.replace('-', "_");
        if ignored(raw_name, &name) {
            continue;
        }
        let w = parse_word(&cmd, opt, raw_name, &name, value)?;
        let source = |_: &'static str| Source::MountOption(name.clone());
        layer = Layer::new(w.api, w.mount, source).or(layer);
        if w.config.is_some() {
            extra.config = w.config;
        }
        if let Some(on) = w.foreground {
            extra.foreground = on;
        }
        extra.verbose = extra.verbose.saturating_add(w.verbose);
    }
    Ok((layer, extra))
}

/// One option, parsed as the flag it names.
fn parse_word(
    cmd: &clap::Command,
    opt: &str,
    raw_name: &str,
    name: &str,
    value: Option<&str>,
) -> Result<Words> {
    let arg = cmd
        .get_arguments()
        .find(|a| names(a, true).iter().any(|n| n == name))
        .ok_or_else(|| unknown(cmd, raw_name))?;
    let flag = flag_name(name);
    let word = match (kind(arg), value) {
        (Kind::Valued, Some(v)) if !v.is_empty() => format!("{flag}={v}"),
        (Kind::Valued, _) => bail!("option {opt} needs a value: {opt}=..."),
        (Kind::Switch, Some(v)) => format!("{flag}={v}"),
        (Kind::Switch | Kind::Counted, _) => flag,
    };
    let matches = cmd.clone().try_get_matches_from([word]).map_err(|e| {
        let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
        match kind(arg) {
            Kind::Switch => anyhow!(
                "option {opt}={}: {why}",
                value.unwrap_or_default().trim().to_ascii_lowercase()
            ),
            _ => anyhow!("option {name}: {why}"),
        }
    })?;
    Ok(Words::from_arg_matches(&matches)?)
}
