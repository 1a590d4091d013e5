//! `importfs mount`: mount an account, in the background by default.
//!
//! The API key comes from `IMPORTIO_API_KEY` or `--api-key-file`, never from a
//! plain flag, so it does not show in `ps`. A background mount re-runs this
//! binary with `--foreground` in a new session ([`background`]), hands it the
//! key through a pipe on its stdin (never its argv or environment), and
//! returns only once the mount answers, or with the child's error; the
//! foreground mount itself is [`serve`], through FUSE or NFS (`--backend`).
//!
//! Subtle: the checks that can fail ([`checks`]) run here, before choosing
//! between the two, so that their errors reach the terminal in both cases.

pub mod args;
pub mod background;
pub mod checks;
#[cfg(any(target_os = "linux", feature = "macfuse"))]
mod fuse;
mod nfs;
pub mod serve;
mod watcher;

pub use args::{mount_args, MountArgs, MountCmd};
pub use serve::mount_foreground;

use crate::cli::settings::{self, Backend};
use anyhow::Result;

pub fn run(cmd: MountCmd) -> Result<()> {
    let secrets = cmd
        .secrets_stdin
        .then(background::read_secrets)
        .transpose()?;
    let eff = settings::resolve(&cmd.settings)?;
    let mut args = mount_args(&cmd, &eff)?;
    let key = match secrets {
        Some(s) => {
            args.settings.proxy = s.proxy.map(settings::ProxyUrl);
            crate::api::ApiKey::new(s.api_key)
        }
        None => eff.api_key()?,
    };
    match args.settings.backend {
        Backend::Fuse => {
            checks::check_fuse_available()?;
            if args.settings.allow_other {
                crate::platform::check_allow_other().map_err(anyhow::Error::msg)?;
            }
        }
        Backend::Nfs => checks::check_nfs_available(args.settings.sudo)?,
    }
    checks::check_mountpoint(&args.mountpoint)?;
    if args.foreground {
        let log_file = args
            .log_file_given
            .then_some(args.settings.log_file.as_path());
        crate::cli::logging::init_logging_to(args.verbose, None, log_file)?;
        return mount_foreground(&args, key, None);
    }
    background::spawn_background(&args, &key)
}
