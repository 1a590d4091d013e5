//! A background mount: re-run this binary as `importfs mount --foreground`
//! in a new session, its output appended to the log file, and return once
//! the mount answers, or with the child's error.
//!
//! Subtle: the child gets every setting as an explicit flag and ignores the
//! config file, so it mounts exactly what was resolved here, whatever form
//! the command line had (flags, -o options, or mount(8)'s helper call). The
//! key goes through its environment, never its argv (`ps` shows argv), and
//! `IMPORTIO_API_URL` is taken out of that environment, so that the only
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
    let child = child_command(args, key, log_out)?
        .spawn()
        .context("cannot start the background mount")?;
    wait_for_mount(child, &args.mountpoint, log, start_len)
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
fn child_command(args: &MountArgs, key: &ApiKey, log_out: File) -> Result<Command> {
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
    cmd.env(KEY_ENV, key.expose())
        .env_remove(URL_ENV)
        .current_dir("/")
        .stdin(Stdio::null())
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
