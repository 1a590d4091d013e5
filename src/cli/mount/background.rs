//! A background mount: re-run this binary as `importfs mount --foreground`
//! in a new session, its output appended to the log file, and return once
//! the mount answers, or with the child's error.
//!
//! Subtle: the child gets every setting as an explicit flag and ignores the
//! config file, so it mounts exactly what was resolved here, whatever form
//! the command line had (flags, -o options, or mount(8)'s helper call). The
//! secrets (the key, and a proxy URL that may hold a password) go through a
//! pipe on its stdin ([`Secrets`]), never its argv (`ps` shows argv) nor
//! its environment (`/proc/PID/environ` keeps what a process started
//! with, and every process the child starts would inherit it); and
//! `IMPORTIO_API_URL` is taken out of its environment, so that the only
//! URL the child sees is the one passed as a flag.

use super::args::MountArgs;
use super::checks::is_mounted;
use crate::api::ApiKey;
use crate::cli::settings::{Settings, KEY_ENV, URL_ENV};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the child may take to mount before we give up on it.
const MOUNT_WAIT: Duration = Duration::from_secs(30);

/// Re-run ourselves in the foreground, detached, and wait for the mount.
pub fn spawn_background(args: &MountArgs, key: &ApiKey) -> Result<()> {
    let log = &args.settings.log_file;
    let log_out = open_log(log)?;
    let start_len = log_out.metadata().map(|m| m.len()).unwrap_or(0);
    let mut child = child_command(args, log_out)?
        .spawn()
        .context("cannot start the background mount")?;
    let secrets = Secrets {
        api_key: key.expose().to_owned(),
        proxy: args.settings.proxy.as_ref().map(|p| p.0.clone()),
    };
    if let Some(mut pipe) = child.stdin.take() {
        // A child that died at once has closed the pipe: its log says why.
        let _ = serde_json::to_writer(&mut pipe, &secrets);
    }
    wait_for_mount(child, &args.mountpoint, log, start_len)
}

/// What a background mount is handed on its stdin, as one JSON object.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    pub api_key: String,
    pub proxy: Option<String>,
}

/// Read the [`Secrets`] the parent wrote on our stdin (`--secrets-stdin`).
pub fn read_secrets() -> Result<Secrets> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .context("cannot read the key from the parent process")?;
    serde_json::from_str(&text).context("the parent process sent no key")
}

/// The log file, opened for appending (its folder made if need be).
fn open_log(log: &Path) -> Result<File> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the log file {}", log.display()))
}

/// `importfs mount --foreground --no-config MOUNTPOINT` and every setting,
/// detached from our terminal, its output into `log_out`.
fn child_command(args: &MountArgs, log_out: File) -> Result<Command> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the importfs binary")?;
    // The key file is not passed on: the key itself is.
    let settings = Settings {
        api_key_file: None,
        ..args.settings.clone()
    };
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg("--foreground")
        .arg("--no-config")
        .arg("--secrets-stdin")
        .arg(&args.mountpoint)
        .args(settings.to_flags());
    if args.verbose > 0 {
        cmd.arg(format!("-{}", "v".repeat(args.verbose.min(3) as usize)));
    }
    for (value, flag) in [
        (args.api_timeout, "--api-timeout"),
        (args.api_deadline, "--api-deadline"),
    ] {
        if let Some(d) = value {
            cmd.arg(flag).arg(humantime::format_duration(d).to_string());
        }
    }
    cmd.env_remove(KEY_ENV)
        .env_remove(URL_ENV)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(log_out.try_clone()?)
        .stderr(log_out);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok(cmd)
}

/// Wait until the mount answers; if the child exits first, fail with the
/// last error it logged after `start_len`.
fn wait_for_mount(mut child: Child, mountpoint: &Path, log: &Path, start_len: u64) -> Result<()> {
    let deadline = Instant::now() + MOUNT_WAIT;
    loop {
        if is_mounted(mountpoint) && std::fs::metadata(mountpoint).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let msg = last_error(log, start_len);
            bail!(
                "the mount failed ({status}){}{} (log: {})",
                if msg.is_empty() { "" } else { ": " },
                msg.trim_start_matches("importfs: "),
                log.display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the mount did not come up within 30 s (log: {})",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last error line the child wrote to the log (after `start_len`).
fn last_error(log: &Path, start_len: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let tail = String::from_utf8_lossy(&text[(start_len as usize).min(text.len())..]).to_string();
    tail.lines()
        .rev()
        .find(|l| l.contains("importfs:") || l.contains("ERROR"))
        .unwrap_or("")
        .trim()
        .to_owned()
}
