//! The FUSE session of a mount: fuser's options for this OS, serving until
//! unmounted, unmounting on a signal, and the watcher that unmounts if
//! this process dies.
//!
//! Subtle: a signal unmounts by path (the platform's unmount): the kernel
//! then ends fuser's session loop, whereas dropping fuser's auto-unmount
//! socket leaves a mount whose connection is still alive. And a watcher
//! process unmounts the path if this one dies without doing so (see
//! `watcher.rs`). macFUSE takes other options than Linux's FUSE: no
//! `auto_unmount` or `subtype`, but a volume name, no AppleDouble `._`
//! files or Finder xattrs, and a `daemon_timeout` above the API deadline,
//! so a slow API call is not taken for a dead filesystem.

use super::args::MountArgs;
use crate::cli::settings::Settings;
use crate::cli::signal::wait_for_signal;
use crate::fs::core::Fs;
use crate::fs::fuse::FuseFs;
use crate::platform;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Mount `fs` with fuser and serve it until it is unmounted. `ready` is
/// told once the mount is up.
pub fn serve(
    args: &MountArgs,
    fs: Arc<Fs>,
    rt: &tokio::runtime::Runtime,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    let adapter = FuseFs::new(fs.clone(), rt.handle().clone());
    let mut session = fuser::Session::new(adapter, &args.mountpoint, &fuse_config(args))
        .with_context(|| format!("cannot mount on {}", args.mountpoint.display()))?;
    let watcher = super::watcher::spawn(&args.mountpoint);
    platform::raise_read_ahead(&args.mountpoint);
    fs.set_invalidator(notifier_thread(session.notifier()));
    tracing::info!(mountpoint = %args.mountpoint.display(), api = %args.settings.api_url, "mounted");
    rt.spawn(unmount_on_signal(
        args.mountpoint.clone(),
        session.unmount_callable(),
    ));
    if let Some(tx) = ready {
        let _ = tx.send(());
    }
    let result = session.run();
    super::watcher::stop(watcher);
    fs.events.close();
    fs.set_invalidator(Box::new(|_| {}));
    drop(fs);
    result.context("the FUSE session ended with an error")
}

/// fuser's mount options and who may use the mount.
fn fuse_config(args: &MountArgs) -> fuser::Config {
    let s: &Settings = &args.settings;
    let mut options = vec![
        fuser::MountOption::FSName("importfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
    ];
    let deadline = args
        .api_deadline
        .unwrap_or(crate::api::ClientConfig::default().call_deadline);
    let flavour = platform::fuse_flavour(deadline);
    if flavour.subtype {
        options.push(fuser::MountOption::Subtype("importfs".into()));
    }
    options.extend(flavour.options.into_iter().map(fuser::MountOption::CUSTOM));
    if s.read_only {
        options.push(fuser::MountOption::RO);
    }
    let acl = if s.allow_other {
        fuser::SessionACL::All
    } else if platform::is_root() || platform::user_allow_other() {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    // fusermount3 unmounts the path if this process dies; fuser allows that
    // only with allow_root or allow_other. Our own watcher process (see
    // `watcher.rs`) runs in every case: without those options it is the
    // only auto-unmount, and with them it backs up fusermount3's, which was
    // seen to leave a killed mount behind on a loaded machine (its helper
    // exited without unmounting). Whichever comes second finds no mount.
    if flavour.auto_unmount && acl != fuser::SessionACL::Owner {
        options.push(fuser::MountOption::AutoUnmount);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(platform::FUSE_THREADS);
    config
}

/// On Ctrl-C or SIGTERM, unmount by path: the kernel then ends the session
/// loop (ENODEV). Dropping fuser's auto-unmount socket is not enough:
/// fusermount3's watcher leaves a mount whose connection is still alive.
/// A busy mount is then detached (forced on macOS).
async fn unmount_on_signal(mountpoint: PathBuf, mut unmounter: fuser::SessionUnmounter) {
    wait_for_signal().await;
    tracing::info!("signal received, unmounting");
    let unmount = |lazy: bool| {
        let mp = mountpoint.clone();
        tokio::task::spawn_blocking(move || platform::unmount(&mp, lazy))
    };
    if !matches!(unmount(false).await, Ok(Ok(()))) {
        tracing::warn!("the mount is busy; detaching it");
        let _ = unmount(true).await;
    }
    let _ = unmounter.unmount();
}

/// The kernel invalidations the poll asks for, sent from a thread of their
/// own: a notification can wait on the kernel, which may be waiting on a
/// request this process is serving, so it must not block an async worker.
fn notifier_thread(notifier: fuser::Notifier) -> crate::fs::core::InvalidateFn {
    use crate::fs::core::Inval;
    let (tx, rx) = std::sync::mpsc::channel::<Inval>();
    std::thread::spawn(move || {
        for inval in rx {
            // ENOENT: the kernel holds nothing of it; nothing to do.
            let _ = match inval {
                Inval::Inode(ino) => notifier.inval_inode(fuser::INodeNo(ino), 0, 0),
                Inval::Entry(parent, name) => notifier.inval_entry(fuser::INodeNo(parent), &name),
                Inval::Pages(ino, off, len) => {
                    notifier.inval_inode(fuser::INodeNo(ino), off as i64, len as i64)
                }
            };
        }
    });
    Box::new(move |inval| {
        let _ = tx.send(inval);
    })
}
