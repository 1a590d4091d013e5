//! `importfs mount`: mount an account, in the background by default.
//!
//! The API key comes from `IMPORTIO_API_KEY` or `--api-key-file`, never from a
//! plain flag, so it does not show in `ps`. A background mount re-runs this
//! binary with `--foreground` in a new session, hands it the key through the
//! environment (readable only by the same user), and returns only once the
//! mount answers, or with the child's error.

use crate::api::{ApiKey, Client, ClientConfig};
use crate::cli::settings::{
    self, default_cache_dir, default_log_file, Effective, KeySource, SettingsFlags, Source, KEY_ENV,
};
use crate::fs::core::{Fs, FsConfig};
use crate::fs::fuse::FuseFs;
use crate::fs::FetchPlan;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `importfs mount`'s command line. Every setting is optional here: the
/// config file, the environment and the defaults fill in the rest
/// ([`settings::resolve`]), giving a [`MountArgs`].
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
}

/// A duration above zero, as humantime writes it (`10s`, `1m30s`, `500ms`).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 500ms)"))?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(d)
}

/// A mount's settings, fully resolved.
#[derive(Debug, Clone)]
pub struct MountArgs {
    /// Where to mount the account (an existing, empty directory).
    pub mountpoint: PathBuf,
    /// The API's base URL.
    pub api_url: String,
    /// The file the API key was read from, if any (the key itself travels separately).
    pub api_key_file: Option<PathBuf>,
    /// Stay attached to the terminal instead of running in the background.
    pub foreground: bool,
    /// Refuse every write with EROFS and make no mutating API call.
    pub read_only: bool,
    /// Let `rmdir` archive extractors and delete reports.
    pub allow_delete: bool,
    /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf).
    pub allow_other: bool,
    /// How long listings and objects are cached.
    pub metadata_ttl: Duration,
    /// Where downloaded result files are kept (None: the default under $XDG_CACHE_HOME).
    pub cache_dir: Option<PathBuf>,
    /// The most the result cache may hold, in bytes.
    pub cache_size: u64,
    /// How result files are fetched (chunk size, parallel ranged GETs).
    pub fetch: FetchPlan,
    /// Where the log goes: a background mount's default is under
    /// $XDG_STATE_HOME; a foreground mount logs to stderr unless this is set.
    pub log_file: Option<PathBuf>,
    /// More logging (-v info, -vv debug, -vvv trace).
    pub verbose: u8,
    /// One API attempt's timeout (None: the client's default).
    pub api_timeout: Option<Duration>,
    /// One API call's deadline, retries included (None: the client's default).
    pub api_deadline: Option<Duration>,
    /// Where `/metrics` and `/healthz` are served (None: not at all).
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Is `path` a mountpoint of an importfs filesystem right now?
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l
            .split(" - ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        f.get(4) == Some(&want.as_str())
            && fstype.starts_with("fuse")
            && fstype.contains("importfs")
    })
}

fn check_mountpoint(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // A mount whose process died: every stat fails with ENOTCONN until
        // someone unmounts it, and "does not exist" would send users astray.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "{} is a dead mount (Transport endpoint is not connected: the process serving it \
             is gone): clear it with `importfs unmount {}` (or `fusermount3 -uz {}`) and mount again",
            path.display(),
            path.display(),
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the mountpoint {} does not exist: create it with `mkdir -p {}`",
            path.display(),
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot use the mountpoint {}", path.display())),
    };
    if !meta.is_dir() {
        bail!("the mountpoint {} is not a directory", path.display());
    }
    // fusermount3 lets a user mount only on a directory they can write to.
    if !is_root() {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .context("the mountpoint has a NUL byte")?;
        // SAFETY: a valid NUL-terminated path; access has no other preconditions.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            use std::os::unix::fs::MetadataExt;
            bail!(
                "you cannot write to the mountpoint {} (owner uid {}), and FUSE lets users mount \
                 only on directories they can write to: use one of your own, e.g. `mkdir -p ~/importio`",
                path.display(),
                meta.uid()
            );
        }
    }
    if is_mounted(path) {
        bail!(
            "{} is already an importfs mount: unmount it first with `fusermount3 -u {}`",
            path.display(),
            path.display()
        );
    }
    if std::fs::read_dir(path)?.next().is_some() {
        bail!(
            "the mountpoint {} is not empty: mount on an empty directory",
            path.display()
        );
    }
    Ok(())
}

fn check_fuse_available() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse is missing: load the module with `modprobe fuse` (or run the container with --device /dev/fuse)");
    }
    let has_fusermount = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .any(|d| d.join("fusermount3").exists() || d.join("fusermount").exists())
        })
        .unwrap_or(false);
    if !has_fusermount {
        bail!("fusermount3 is missing: install it with `sudo apt-get install fuse3`");
    }
    // A user mounts through /dev/fuse (fuser opens it before it would try
    // fusermount3), so it must be readable and writable by everyone, as
    // distributions set it. Some containers leave it root-only.
    if !is_root() {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata("/dev/fuse")
                    .map(|m| format!(" (mode {:03o})", m.permissions().mode() & 0o777))
                    .unwrap_or_default();
                bail!(
                    "/dev/fuse cannot be opened by you{mode}: users mount through it, so \
                     distributions make it `crw-rw-rw-`; ask an administrator to run \
                     `chmod 666 /dev/fuse` (or add a udev rule), or mount as root"
                );
            }
        }
    }
    Ok(())
}

fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

/// Make a path absolute without touching the filesystem: a background
/// mount runs from `/`, so relative paths must be fixed before it starts.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Turn the resolved settings into a mount's arguments.
pub fn mount_args(cmd: &MountCmd, eff: &Effective) -> Result<MountArgs> {
    let s = eff.settings();
    Ok(MountArgs {
        mountpoint: absolute(&cmd.mountpoint)?,
        api_url: s.api_url,
        api_key_file: match &eff.key {
            KeySource::File(p, _) => Some(absolute(p)?),
            _ => None,
        },
        foreground: cmd.foreground || eff.options.foreground,
        read_only: s.read_only,
        allow_delete: s.allow_delete,
        allow_other: s.allow_other,
        metadata_ttl: s.metadata_ttl,
        cache_dir: Some(absolute(&s.cache_dir)?),
        cache_size: s.cache_size,
        fetch: FetchPlan {
            chunk_size: s.download_chunk_size,
            streams: s.download_streams,
        },
        log_file: match eff.layer.log_file.as_ref().map(|l| &l.source) {
            Some(Source::Default) | None => None,
            _ => Some(absolute(&s.log_file)?),
        },
        verbose: cmd.verbose.saturating_add(eff.options.verbose),
        api_timeout: cmd.api_timeout,
        api_deadline: cmd.api_deadline,
        metrics_addr: s.metrics_addr,
    })
}

pub fn run(cmd: MountCmd) -> Result<()> {
    let eff = settings::resolve(&cmd.settings)?;
    let key = eff.api_key()?;
    let args = mount_args(&cmd, &eff)?;
    check_fuse_available()?;
    check_mountpoint(&args.mountpoint)?;
    if args.allow_other && !is_root() && !user_allow_other() {
        bail!(
            "allow_other needs `user_allow_other` in /etc/fuse.conf: add it with \
             `echo user_allow_other | sudo tee -a /etc/fuse.conf`, or mount without --allow-other"
        );
    }
    if args.foreground {
        crate::cli::logging::init_logging_to(args.verbose, None, args.log_file.as_deref())?;
        return mount_foreground(&args, key, None);
    }
    spawn_background(&args, &key)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Re-run ourselves in the foreground, detached, and wait for the mount.
fn spawn_background(args: &MountArgs, key: &ApiKey) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let log = args.log_file.clone().unwrap_or_else(default_log_file);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log_out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    let start_len = log_out.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the importfs binary")?;
    // The child gets every setting as an explicit flag and ignores the config
    // file, so it mounts exactly what was resolved here (whatever form the
    // command line had: flags, -o options, or mount(8)'s helper call).
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("mount")
        .arg("--foreground")
        .arg("--no-config")
        .arg(&args.mountpoint);
    cmd.arg("--api-url").arg(&args.api_url);
    cmd.arg("--metadata-ttl")
        .arg(humantime::format_duration(args.metadata_ttl).to_string());
    if let Some(dir) = &args.cache_dir {
        cmd.arg("--cache-dir").arg(dir);
    }
    cmd.arg("--cache-size").arg(args.cache_size.to_string());
    cmd.arg("--download-chunk-size")
        .arg(args.fetch.chunk_size.to_string());
    cmd.arg("--download-streams")
        .arg(args.fetch.streams.to_string());
    cmd.arg("--log-file").arg(&log);
    if let Some(addr) = args.metrics_addr {
        cmd.arg("--metrics-addr").arg(addr.to_string());
    }
    for (on, flag) in [
        (args.read_only, "--read-only"),
        (args.allow_delete, "--allow-delete"),
        (args.allow_other, "--allow-other"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
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
    // The key goes through the environment, never argv (`ps` shows argv).
    cmd.env(KEY_ENV, key.expose())
        .env_remove(settings::URL_ENV)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(log_out.try_clone()?)
        .stderr(log_out);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the background mount")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if is_mounted(&args.mountpoint) && std::fs::metadata(&args.mountpoint).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read(&log).unwrap_or_default();
            let tail =
                String::from_utf8_lossy(&text[(start_len as usize).min(text.len())..]).to_string();
            let msg = tail
                .lines()
                .rev()
                .find(|l| l.contains("importfs:") || l.contains("ERROR"))
                .unwrap_or("")
                .trim()
                .to_owned();
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

/// The client's settings for a mount: the defaults, with the mount's API URL,
/// key, and any `--api-timeout` / `--api-deadline`. An attempt never outlasts
/// its call, so a timeout above the deadline is cut to it. More
/// `--download-streams` than the default download slots get the slots they
/// ask for, on top of the slots kept for metadata calls, so an `ls` still
/// never waits behind a file's ranges.
pub fn client_config(args: &MountArgs, key: ApiKey) -> ClientConfig {
    let mut cfg = ClientConfig::new(args.api_url.clone(), key);
    if args.fetch.streams > cfg.max_concurrent_downloads {
        let metadata = cfg.max_concurrent - cfg.max_concurrent_downloads;
        cfg.max_concurrent_downloads = args.fetch.streams;
        cfg.max_concurrent = args.fetch.streams + metadata;
    }
    if let Some(d) = args.api_deadline {
        cfg.call_deadline = d;
        cfg.attempt_timeout = cfg.attempt_timeout.min(d);
        cfg.connect_timeout = cfg.connect_timeout.min(d);
    }
    if let Some(t) = args.api_timeout {
        cfg.attempt_timeout = t.min(cfg.call_deadline);
    }
    cfg
}

/// Mount and serve until unmounted or signalled. `ready` is told once the mount is up.
pub fn mount_foreground(
    args: &MountArgs,
    key: ApiKey,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("importfs-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = Client::new(client_config(args, key)).context("cannot build the API client")?;
    // The metrics address is taken first: a busy port fails here, before
    // the key check and long before anything is mounted.
    let metrics = args.metrics_addr.map(crate::metrics::bind).transpose()?;

    // Fail before mounting when the key or the URL is wrong.
    rt.block_on(async { client.current_user().await })
        .map_err(|e| {
            if e.is_auth() {
                anyhow::anyhow!("the API key was refused by {} ({e})", args.api_url)
            } else {
                anyhow::anyhow!("cannot reach the Import.io API at {}: {e}", args.api_url)
            }
        })?;

    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let cfg = FsConfig {
        metadata_ttl: args.metadata_ttl,
        cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
        cache_size: args.cache_size,
        fetch: args.fetch,
        read_only: args.read_only,
        allow_delete: args.allow_delete,
        uid,
        gid,
        ..FsConfig::default()
    };
    let fs = Arc::new(Fs::new(cfg, client).context("cannot create the cache directory")?);
    let adapter = FuseFs::new(fs.clone(), rt.handle().clone());
    if let Some(listener) = metrics {
        let _enter = rt.enter();
        crate::metrics::serve(listener, fs.clone())?;
    }

    let mut options = vec![
        fuser::MountOption::FSName("importfs".into()),
        fuser::MountOption::Subtype("importfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
    ];
    if args.read_only {
        options.push(fuser::MountOption::RO);
    }
    let acl = if args.allow_other {
        fuser::SessionACL::All
    } else if is_root() || user_allow_other() {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    // fusermount3 unmounts the path if this process dies; fuser allows that
    // only with allow_root or allow_other. Our own watcher process (see
    // `watch_mount`) runs in every case: without those options it is the
    // only auto-unmount, and with them it backs up fusermount3's, which was
    // seen to leave a killed mount behind on a loaded machine (its helper
    // exited without unmounting). Whichever comes second finds no mount.
    let fusermount_unmounts = acl != fuser::SessionACL::Owner;
    if fusermount_unmounts {
        options.push(fuser::MountOption::AutoUnmount);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(2);

    let mut session = fuser::Session::new(adapter, &args.mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", args.mountpoint.display()))?;
    let mut unmounter = session.unmount_callable();
    let watcher = spawn_watcher(&args.mountpoint);
    raise_read_ahead(&args.mountpoint);
    tracing::info!(mountpoint = %args.mountpoint.display(), api = %args.api_url, "mounted");

    // Ctrl-C and SIGTERM unmount cleanly; the session loop then ends.
    let mountpoint = args.mountpoint.clone();
    rt.spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received, unmounting");
        // Unmount by path: the kernel then ends the session loop (ENODEV).
        // Dropping fuser's auto-unmount socket is not enough: fusermount3's
        // watcher leaves a mount whose connection is still alive.
        let unmounted = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&mountpoint)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            tracing::warn!("the mount is busy; detaching it (fusermount3 -uz)");
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&mountpoint)
                .status();
        }
        let _ = unmounter.unmount();
    });
    if let Some(tx) = ready {
        let _ = tx.send(());
    }
    let result = session.run();
    if let Some(mut watcher) = watcher {
        // Unmounted: the watcher reads EOF, finds no mount and exits.
        drop(watcher.stdin.take());
        let _ = watcher.wait();
    }
    drop(fs);
    rt.shutdown_timeout(Duration::from_secs(1));
    result.context("the FUSE session ended with an error")?;
    tracing::info!("unmounted");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Start `importfs __watch-mount` over this mount: it unmounts it if this
/// process dies without doing so. It runs in its own process group (a
/// Ctrl-C meant for us must not reach it) from `/` (so it keeps no
/// directory busy), and holds the read end of a pipe whose write end only
/// this process has.
fn spawn_watcher(mountpoint: &Path) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mountpoint = std::path::absolute(mountpoint).ok()?;
    let dev = crate::cli::manage::importfs_device(&mountpoint)?;
    let exe = std::env::current_exe().ok()?;
    let spawned = std::process::Command::new(exe)
        .arg("__watch-mount")
        .arg("--dev")
        .arg(&dev)
        .arg(&mountpoint)
        .env_remove(KEY_ENV)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn();
    match spawned {
        Ok(child) => {
            tracing::debug!(pid = child.id(), %dev, "auto-unmount watcher started");
            Some(child)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no auto-unmount: the watcher process did not start");
            None
        }
    }
}

/// Ask the kernel for 1 MiB read-ahead on this mount (root only; quietly
/// skipped otherwise): 1 MiB FUSE reads stream a cold file much faster.
fn raise_read_ahead(mountpoint: &Path) {
    let mp = mountpoint.to_owned();
    std::thread::spawn(move || {
        use std::os::unix::fs::MetadataExt;
        for _ in 0..50 {
            if let Ok(meta) = std::fs::metadata(&mp) {
                let dev = meta.dev();
                let (major, minor) = (libc::major(dev), libc::minor(dev));
                let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
                if std::fs::write(&path, "1024").is_ok() {
                    tracing::debug!(%path, "read-ahead raised to 1 MiB");
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}
