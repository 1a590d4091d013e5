//! `importfs serve nfs`: the account's tree over NFSv3 on loopback, in the
//! foreground, mounting nothing; for mounting by hand, or by another
//! machine's user through an SSH tunnel.
//!
//! It takes every setting `importfs mount` takes (flags, `-o`, the config
//! file, the environment), builds the same filesystem, and prints where it
//! listens with the command that mounts it on Linux and on macOS.
//!
//! Subtle: the address must be a loopback one. The server lets in only
//! reserved source ports and the serving user's (or root's) AUTH_SYS
//! credentials; `--allow-unprivileged-ports` opens it to any local user's
//! user-space client, which is what it says.

use crate::cli::mount::{serve::prepare, MountArgs};
use crate::cli::settings::{self, SettingsFlags};
use crate::cli::signal::wait_for_signal;
use crate::fs::nfs::{NfsOptions, NfsServer, EXPORT};
use crate::platform::nfs::{linux_options, macos_options, source, NfsMount};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub protocol: Protocol,
}

#[derive(Debug, Subcommand)]
pub enum Protocol {
    /// Serve the account over NFSv3 on loopback (MOUNT and NFS on one port).
    Nfs(ServeNfsArgs),
}

#[derive(Debug, Args)]
pub struct ServeNfsArgs {
    /// Where to listen: a loopback address and port (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Let clients in from unprivileged source ports (user-space NFS clients,
    /// such as libnfs's nfs-cat). Any local user can then read and write the
    /// account through the server, as far as their AUTH_SYS uid is yours or
    /// root's, which a user-space client can claim.
    #[arg(long)]
    pub allow_unprivileged_ports: bool,
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn run(args: ServeArgs) -> Result<()> {
    match args.protocol {
        Protocol::Nfs(a) => serve_nfs(a),
    }
}

fn serve_nfs(args: ServeNfsArgs) -> Result<()> {
    let eff = settings::resolve(&args.settings)?;
    let key = eff.api_key()?;
    let mut s = eff.settings();
    s.cache_dir =
        std::path::absolute(&s.cache_dir).context("cannot make the cache dir absolute")?;
    let verbose = args.verbose.saturating_add(eff.options.verbose);
    crate::cli::logging::init_logging(verbose, None)?;
    let margs = MountArgs {
        mountpoint: Default::default(),
        settings: s,
        log_file_given: false,
        foreground: true,
        verbose,
        api_timeout: None,
        api_deadline: None,
    };
    let (rt, fs) = prepare(&margs, key)?;
    let opts = NfsOptions {
        allow_unprivileged_ports: args.allow_unprivileged_ports,
        // SAFETY: geteuid has no preconditions and cannot fail.
        uid: unsafe { libc::geteuid() },
    };
    let server = rt
        .block_on(NfsServer::bind(args.listen, fs, opts))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = server.local_addr()?;
    print_how_to_mount(addr, &margs);
    tracing::info!(%addr, "serving NFSv3");
    rt.block_on(server.serve(wait_for_signal()));
    rt.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(())
}

/// The address, and the commands that mount it, on stdout.
fn print_how_to_mount(addr: SocketAddr, args: &MountArgs) {
    let m = NfsMount {
        port: addr.port(),
        attr_ttl: args.settings.metadata_ttl,
        read_only: args.settings.read_only,
    };
    let src = source(EXPORT);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "importfs: serving NFSv3 on {addr}, export {EXPORT}");
    let _ = writeln!(out, "mount on Linux (as root):");
    let _ = writeln!(
        out,
        "  mount -t nfs -o {} {src} MOUNTPOINT",
        linux_options(&m)
    );
    let _ = writeln!(out, "mount on macOS:");
    let _ = writeln!(out, "  mount_nfs -o {} {src} MOUNTPOINT", macos_options(&m));
    let _ = writeln!(out, "Ctrl-C stops the server (unmount first).");
    let _ = out.flush();
}
