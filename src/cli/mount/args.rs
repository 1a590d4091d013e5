//! `importfs mount`'s command line, and the mount's arguments once every
//! source has been resolved ([`mount_args`]).
//!
//! Subtle: all paths are made absolute here, before anything else, because
//! a background mount runs from `/` and would read a relative path against
//! that; and the key file is kept only as a path, since the key itself
//! travels to a background mount through its environment, never its argv.

use crate::cli::settings::{Effective, KeySource, Settings, SettingsFlags, Source};
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `importfs mount`'s command line. Every setting is optional here: the
/// config file, the environment and the defaults fill in the rest
/// ([`resolve()`](crate::cli::settings::resolve())), giving a [`MountArgs`].
#[derive(Debug, Clone, Args)]
pub struct MountCmd {
    /// Where to mount the account (an existing, empty directory).
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Stay attached to the terminal instead of running in the background.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The most one API attempt may wait for an answer (headers and body;
    /// for a download, each next chunk), e.g. 3s [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, hide = true)]
    pub api_timeout: Option<Duration>,
    /// The most one API call may take, retries included (for a download, the
    /// longest time without a new byte); a file operation waiting on the API
    /// fails with EIO after about this long, e.g. 10s [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, hide = true)]
    pub api_deadline: Option<Duration>,
    /// Read the key (and the proxy) as JSON from stdin: how a background
    /// mount gets them from the `importfs mount` that started it.
    #[arg(long, hide = true)]
    pub secrets_stdin: bool,
}

/// A duration above zero, as humantime writes it (`10s`, `1m30s`, `500ms`).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 500ms)"))?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(d)
}

/// A mount's arguments, fully resolved.
#[derive(Debug, Clone)]
pub struct MountArgs {
    /// Where to mount the account (an existing, empty directory).
    pub mountpoint: PathBuf,
    /// Every setting in force, its paths absolute. `api_key_file` is the
    /// file the key was read from, if any.
    pub settings: Settings,
    /// Whether `settings.log_file` was asked for: a foreground mount logs to
    /// stderr unless it was; a background one always logs to that file.
    pub log_file_given: bool,
    /// Stay attached to the terminal instead of running in the background.
    pub foreground: bool,
    /// More logging (-v info, -vv debug, -vvv trace).
    pub verbose: u8,
    /// One API attempt's timeout (None: the client's default).
    pub api_timeout: Option<Duration>,
    /// One API call's deadline, retries included (None: the client's default).
    pub api_deadline: Option<Duration>,
}

/// Make a path absolute without touching the filesystem: a background
/// mount runs from `/`, so relative paths must be fixed before it starts.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Turn the resolved settings into a mount's arguments.
pub fn mount_args(cmd: &MountCmd, eff: &Effective) -> Result<MountArgs> {
    let mut settings = eff.settings();
    settings.api_key_file = match &eff.key {
        KeySource::File(p, _) => Some(absolute(p)?),
        _ => None,
    };
    settings.cache_dir = absolute(&settings.cache_dir)?;
    settings.ca_cert = settings.ca_cert.as_deref().map(absolute).transpose()?;
    settings.log_file = absolute(&settings.log_file)?;
    let log_source = eff.layer.log_file.as_ref().map(|l| &l.source);
    Ok(MountArgs {
        mountpoint: absolute(&cmd.mountpoint)?,
        settings,
        log_file_given: !matches!(log_source, Some(Source::Default) | None),
        foreground: cmd.foreground || eff.options.foreground,
        verbose: cmd.verbose.saturating_add(eff.options.verbose),
        api_timeout: cmd.api_timeout,
        api_deadline: cmd.api_deadline,
    })
}
