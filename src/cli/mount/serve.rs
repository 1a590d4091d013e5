//! A mount in this process: check the key, build the filesystem, then
//! mount it (with fuser in [`super::fuse`], or through the OS's NFS client
//! in `nfs.rs`) and serve until it is unmounted or we are signalled.
//!
//! Subtle: everything that can fail is tried before anything is mounted
//! (the metrics port, the key and the URL, the cache dir), so a failed
//! mount leaves no dead mountpoint behind.

use super::args::MountArgs;
use crate::api::{ApiKey, Client, ClientConfig};
use crate::cli::settings::{Backend, Settings};
use crate::fs::core::{Fs, FsConfig};
use crate::fs::FetchPlan;
use anyhow::{anyhow, Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// Mount and serve until unmounted or signalled. `ready` is told once the mount is up.
pub fn mount_foreground(
    args: &MountArgs,
    key: ApiKey,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    let (rt, fs) = prepare(args, key)?;
    let result = serve_kernel(args, fs.clone(), &rt, ready);
    // Change detection stops, whatever ended the mount.
    fs.events.close();
    rt.shutdown_timeout(Duration::from_secs(1));
    result?;
    tracing::info!("unmounted");
    Ok(())
}

/// Everything a mount needs before it is mounted, each failure said before
/// anything is: the async runtime, the metrics port, the key and the URL
/// (one call to the API), the cache directory. The metrics endpoint is
/// served from here on.
pub fn prepare(args: &MountArgs, key: ApiKey) -> Result<(tokio::runtime::Runtime, Arc<Fs>)> {
    let s = &args.settings;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("importfs-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = Client::new(client_config(args, key)?).context("cannot build the API client")?;
    // The metrics address is taken first: a busy port fails here, before
    // the key check and long before anything is mounted.
    let metrics = s.metrics_addr.map(crate::metrics::bind).transpose()?;
    rt.block_on(check_account(&client, &s.api_url))?;
    let fs = Arc::new(Fs::new(fs_config(s), client).context("cannot create the cache directory")?);
    if let Some(listener) = metrics {
        let _enter = rt.enter();
        crate::metrics::serve(listener, fs.clone())?;
    }
    if !s.poll_interval.is_zero() {
        rt.spawn(crate::fs::poll::run(fs.clone(), s.poll_interval));
    }
    Ok((rt, fs))
}

/// Mount `fs` through the kernel, by the backend asked for, and serve it
/// until it is unmounted.
fn serve_kernel(
    args: &MountArgs,
    fs: Arc<Fs>,
    rt: &tokio::runtime::Runtime,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    match args.settings.backend {
        Backend::Nfs => super::nfs::serve(args, fs, rt, ready),
        Backend::Fuse => serve_fuse(args, fs, rt, ready),
    }
}

#[cfg(any(target_os = "linux", feature = "macfuse"))]
fn serve_fuse(
    args: &MountArgs,
    fs: Arc<Fs>,
    rt: &tokio::runtime::Runtime,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    super::fuse::serve(args, fs, rt, ready)
}

/// A build with no FUSE (macOS without the `macfuse` feature) has no FUSE
/// mount to offer; `importfs mount` says so before getting here.
#[cfg(not(any(target_os = "linux", feature = "macfuse")))]
fn serve_fuse(
    _args: &MountArgs,
    _fs: Arc<Fs>,
    _rt: &tokio::runtime::Runtime,
    _ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    crate::platform::check_fuse().map_err(anyhow::Error::msg)
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
pub fn client_config(args: &MountArgs, key: ApiKey) -> Result<ClientConfig> {
    let mut cfg = crate::cli::connect::client_config(&args.settings, key)?;
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
    Ok(cfg)
}

/// The filesystem's settings: the defaults, with the mount's, owned by us.
fn fs_config(s: &Settings) -> FsConfig {
    FsConfig {
        metadata_ttl: s.metadata_ttl,
        cache_dir: s.cache_dir.clone(),
        cache_size: s.cache_size,
        max_memory: s.max_memory,
        fetch: FetchPlan {
            chunk_size: s.download_chunk_size,
            streams: s.download_streams,
        },
        read_only: s.read_only,
        allow_delete: s.allow_delete,
        ..FsConfig::default()
    }
}
