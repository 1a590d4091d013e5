//! A mount in this process: check the key, build the filesystem, mount it
//! with fuser and serve until it is unmounted or we are signalled.
//!
//! Subtle: everything that can fail is tried before anything is mounted
//! (the metrics port, the key and the URL, the cache dir), so a failed mount leaves no
//! dead mountpoint behind. A signal unmounts by path with fusermount3:
//! the kernel then ends fuser's session loop, whereas dropping fuser's
//! auto-unmount socket leaves a mount whose connection is still alive.
//! And a watcher process unmounts the path if this one dies without doing
//! so (see `spawn_watcher`).

use super::args::MountArgs;
use super::checks::{is_root, user_allow_other};
use crate::api::{ApiKey, Client, ClientConfig};
use crate::cli::settings::{Settings, KEY_ENV};
use crate::cli::signal::wait_for_signal;
use crate::fs::core::{Fs, FsConfig};
use crate::fs::fuse::FuseFs;
use crate::fs::FetchPlan;
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Mount and serve until unmounted or signalled. `ready` is told once the mount is up.
pub fn mount_foreground(
    args: &MountArgs,
    key: ApiKey,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    let s = &args.settings;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("importfs-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = Client::new(client_config(args, key)).context("cannot build the API client")?;
    // The metrics address is taken first: a busy port fails here, before
    // the key check and long before anything is mounted.
    let metrics = s.metrics_addr.map(crate::metrics::bind).transpose()?;
    rt.block_on(check_account(&client, &s.api_url))?;
    let fs = Arc::new(Fs::new(fs_config(s), client).context("cannot create the cache directory")?);
    let adapter = FuseFs::new(fs.clone(), rt.handle().clone());
    if let Some(listener) = metrics {
        let _enter = rt.enter();
        crate::metrics::serve(listener, fs.clone())?;
    }
    let mut session = fuser::Session::new(adapter, &args.mountpoint, &fuse_config(s))
        .with_context(|| format!("cannot mount on {}", args.mountpoint.display()))?;
    let watcher = spawn_watcher(&args.mountpoint);
    raise_read_ahead(&args.mountpoint);
    tracing::info!(mountpoint = %args.mountpoint.display(), api = %s.api_url, "mounted");
    rt.spawn(unmount_on_signal(
        args.mountpoint.clone(),
        session.unmount_callable(),
    ));
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

/// Fail before mounting when the key or the URL is wrong.
async fn check_account(client: &Client, url: &str) -> Result<()> {
    client.current_user().await.map(drop).map_err(|e| {
        if e.is_auth() {
            anyhow!("the API key was refused by {url} ({e})")
        } else {
            anyhow!("cannot reach the Import.io API at {url}: {e}")
        }
    })
}

/// The client's settings for a mount: the defaults, with the mount's API URL,
/// key, and any `--api-timeout` / `--api-deadline`. An attempt never outlasts
/// its call, so a timeout above the deadline is cut to it. More
/// `--download-streams` than the default download slots get the slots they
/// ask for, on top of the slots kept for metadata calls, so an `ls` still
/// never waits behind a file's ranges.
pub fn client_config(args: &MountArgs, key: ApiKey) -> ClientConfig {
    let mut cfg = ClientConfig::new(args.settings.api_url.clone(), key);
    if args.settings.download_streams > cfg.max_concurrent_downloads {
        let metadata = cfg.max_concurrent - cfg.max_concurrent_downloads;
        cfg.max_concurrent_downloads = args.settings.download_streams;
        cfg.max_concurrent = args.settings.download_streams + metadata;
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

/// The filesystem's settings: the defaults, with the mount's, owned by us.
fn fs_config(s: &Settings) -> FsConfig {
    FsConfig {
        metadata_ttl: s.metadata_ttl,
        cache_dir: s.cache_dir.clone(),
        cache_size: s.cache_size,
        fetch: FetchPlan {
            chunk_size: s.download_chunk_size,
            streams: s.download_streams,
        },
        read_only: s.read_only,
        allow_delete: s.allow_delete,
        ..FsConfig::default()
    }
}

/// fuser's mount options and who may use the mount.
fn fuse_config(s: &Settings) -> fuser::Config {
    let mut options = vec![
        fuser::MountOption::FSName("importfs".into()),
        fuser::MountOption::Subtype("importfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
    ];
    if s.read_only {
        options.push(fuser::MountOption::RO);
    }
    let acl = if s.allow_other {
        fuser::SessionACL::All
    } else if is_root() || user_allow_other() {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    // fusermount3 unmounts the path if this process dies; fuser allows that
    // only with allow_root or allow_other. Our own watcher process (see
    // `spawn_watcher`) runs in every case: without those options it is the
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
    config
}

/// On Ctrl-C or SIGTERM, unmount by path: the kernel then ends the session
/// loop (ENODEV). Dropping fuser's auto-unmount socket is not enough:
/// fusermount3's watcher leaves a mount whose connection is still alive.
async fn unmount_on_signal(mountpoint: PathBuf, mut unmounter: fuser::SessionUnmounter) {
    wait_for_signal().await;
    tracing::info!("signal received, unmounting");
    let fusermount = |flag: &str| {
        let mut cmd = tokio::process::Command::new("fusermount3");
        cmd.arg(flag).arg(&mountpoint);
        cmd
    };
    let unmounted = fusermount("-u").status().await.is_ok_and(|s| s.success());
    if !unmounted {
        tracing::warn!("the mount is busy; detaching it (fusermount3 -uz)");
        let _ = fusermount("-uz").status().await;
    }
    let _ = unmounter.unmount();
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
