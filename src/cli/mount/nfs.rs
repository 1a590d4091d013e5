//! A mount through the NFS backend: this process serves the account over
//! NFSv3 on a free loopback port, and the OS's own NFS client mounts it
//! (mount(2) with text options on Linux, or `mount -t nfs` through
//! `--sudo`; `mount_nfs` on macOS), so no kernel extension is needed. It then serves until unmounted (by `importfs unmount`,
//! umount(8), or a signal to this process).
//!
//! Subtle: the server must answer before the mount command runs (the
//! client mounts by asking it), so it is bound and served first; a mount
//! that fails stops it again, leaving nothing behind. Only the mount and
//! umount commands run through sudo (`--sudo`), never the server. The
//! client's options come from `platform::nfs` (reserved port, no locks,
//! attribute cache tied to `--metadata-ttl`, soft with a timeout, so a
//! dead server gives EIO rather than a hung shell).

use super::args::MountArgs;
use crate::cli::signal::wait_for_signal;
use crate::fs::core::Fs;
use crate::fs::nfs::{NfsOptions, NfsServer, EXPORT};
use crate::platform::{self, nfs::NfsMount};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long the OS's mount command may take.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// Serve `fs` over NFS, mount it, and serve until it is unmounted.
pub fn serve(
    args: &MountArgs,
    fs: Arc<Fs>,
    rt: &tokio::runtime::Runtime,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    let s = &args.settings;
    let opts = NfsOptions {
        allow_unprivileged_ports: false,
        // SAFETY: geteuid has no preconditions and cannot fail.
        uid: unsafe { libc::geteuid() },
    };
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = rt
        .block_on(NfsServer::bind(listen, fs, opts))
        .context("cannot start the NFS server")?;
    let port = server.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = rt.spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let m = NfsMount {
        port,
        attr_ttl: s.metadata_ttl,
        read_only: s.read_only,
    };
    if let Err(e) = rt.block_on(mount(&m, &args.mountpoint, s.sudo)) {
        let _ = stop.send(());
        let _ = rt.block_on(serving);
        return Err(e);
    }
    let watcher = super::watcher::spawn(&args.mountpoint);
    tracing::info!(mountpoint = %args.mountpoint.display(), port, api = %s.api_url, "mounted (NFS)");
    if let Some(tx) = ready {
        let _ = tx.send(());
    }
    rt.block_on(until_unmounted(&args.mountpoint, s.sudo));
    super::watcher::stop(watcher);
    let _ = stop.send(());
    let _ = rt.block_on(serving);
    Ok(())
}

/// Mount: on Linux without `--sudo`, mount(2) itself (no mount.nfs
/// needed); otherwise the OS's mount command.
async fn mount(m: &NfsMount, mountpoint: &Path, sudo: bool) -> Result<()> {
    #[cfg(target_os = "linux")]
    if !sudo {
        let (m, mp) = (*m, mountpoint.to_owned());
        let call =
            tokio::task::spawn_blocking(move || platform::nfs::mount_syscall(&m, EXPORT, &mp));
        return match tokio::time::timeout(MOUNT_TIMEOUT, call).await {
            Err(_) => bail!("the NFS mount did not finish within 60 s"),
            Ok(Err(e)) => bail!("the NFS mount stopped: {e}"),
            Ok(Ok(Err(e))) => bail!(
                "the kernel's NFS client could not mount {}: {e}",
                mountpoint.display()
            ),
            Ok(Ok(Ok(()))) => Ok(()),
        };
    }
    mount_command(m, mountpoint, sudo).await
}

/// Run the OS's mount command, and fail with what it said.
async fn mount_command(m: &NfsMount, mountpoint: &Path, sudo: bool) -> Result<()> {
    let mut cmd =
        tokio::process::Command::from(platform::nfs::mount_command(m, EXPORT, mountpoint, sudo));
    let shown = format!("{:?}", cmd.as_std());
    tracing::debug!(command = %shown, "mounting");
    cmd.env_remove(crate::cli::settings::KEY_ENV)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(MOUNT_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("the NFS mount did not finish within 60 s ({shown})"))?
        .with_context(|| format!("cannot run the NFS mount command ({shown})"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        bail!(
            "the OS's NFS client could not mount {} ({}): {said}",
            mountpoint.display(),
            out.status
        );
    }
    Ok(())
}

/// Serve until the mount goes away (unmounted by anyone), or a signal
/// comes, which unmounts it (detaching it if busy).
async fn until_unmounted(mountpoint: &Path, sudo: bool) {
    let gone = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mp = mountpoint.to_owned();
            let mounted = tokio::task::spawn_blocking(move || platform::is_importfs_mount(&mp))
                .await
                .unwrap_or(false);
            if !mounted {
                return;
            }
        }
    };
    tokio::select! {
        _ = gone => tracing::info!("unmounted"),
        _ = wait_for_signal() => {
            tracing::info!("signal received, unmounting");
            let unmount = |lazy: bool| {
                let mp = mountpoint.to_owned();
                tokio::task::spawn_blocking(move || platform::nfs::unmount(&mp, lazy, sudo))
            };
            if !matches!(unmount(false).await, Ok(Ok(()))) {
                tracing::warn!("the mount is busy; detaching it");
                let _ = unmount(true).await;
            }
        }
    }
}
