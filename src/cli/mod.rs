//! The command line: `importfs mount | unmount | status | run | watch |
//! login | logout | config | completions | demo | emulator`, plus the form mount(8) calls a
//! helper with (`importfs SOURCE MOUNTPOINT -o OPTIONS`, see [`helper_form`]).
//!
//! Subtle: mount(8) runs a helper with no PATH, so [`main`] sets the usual
//! one before anything runs fusermount3 or this binary again; and the
//! helper form is only taken when `argv[1]` is neither a flag nor a
//! subcommand, so that it can never change the meaning of a normal call.

use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

pub mod cache;
pub mod connect;
pub mod demo;
pub mod emulator;
pub mod logging;
pub mod login;
pub mod manage;
pub mod mount;
pub mod run;
pub mod serve;
pub mod settings;
pub mod signal;
pub mod watch;

#[derive(Debug, Parser)]
#[command(
    name = "importfs",
    version = env!("IMPORTFS_VERSION"),
    about = "Mount an Import.io account as a filesystem",
    after_help = "The API key comes from a key file (--api-key-file), IMPORTIO_API_KEY, \
                  api_key_file in ~/.config/importfs/config.toml, or else the key `importfs login` \
                  stored; never from a flag.\n\
                  As a mount(8) helper: mount -t fuse.importfs none MOUNTPOINT -o api_key_file=FILE,ro"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount an Import.io account (in the background unless --foreground).
    Mount(mount::MountCmd),
    /// Unmount an importfs mount.
    #[command(alias = "umount")]
    Unmount(manage::UnmountArgs),
    /// Show a mount's counters (its .importfs/stats).
    Status(manage::StatusArgs),
    /// List or clear the result files kept for later mounts.
    Cache(cache::CacheArgs),
    /// Start an extractor's run; optionally wait for it and download its data.
    Run(run::RunArgs),
    /// Follow a mount's run events: print each one, or run a command for each.
    Watch(watch::WatchArgs),
    /// Check an API key once and keep it in the OS's secret store (else a 0600 file).
    ///
    /// The key is read without echo from the terminal, or from standard input
    /// when that is not a terminal (`importfs login <FILE`), checked with one
    /// GET /users/current, and stored for the API URL in the macOS Keychain
    /// or the Secret Service (GNOME Keyring, KWallet); where there is no
    /// secret store, in $XDG_CONFIG_HOME/importfs/key (~/.config/importfs/key,
    /// mode 0600). A refused key stores nothing. Every command looks for the
    /// key in --api-key-file, IMPORTIO_API_KEY, the config file's
    /// api_key_file, and last in what login stored.
    Login(login::LoginArgs),
    /// Remove the key `importfs login` stored for the API URL, wherever it is.
    Logout(login::LogoutArgs),
    /// Print the effective configuration and where each value comes from (the key redacted).
    Config(ConfigArgs),
    /// Print a shell completion script: `importfs completions bash > /etc/bash_completion.d/importfs`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into --dir.
    #[command(hide = true)]
    Manpage(ManpageArgs),
    /// Serve the account without mounting it: `importfs serve nfs`.
    Serve(serve::ServeArgs),
    /// Start a local emulator with a demo account and mount it in the foreground.
    Demo(demo::DemoArgs),
    /// Run a local Import.io API server (for tests, demos and benchmarks).
    Emulator(emulator::EmulatorArgs),
    /// Unmount a mount once the process serving it is gone (started by mount).
    #[command(hide = true, name = "__watch-mount")]
    WatchMount(manage::WatchArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub settings: settings::SettingsFlags,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManpageArgs {
    /// Write importfs.1 and importfs-COMMAND.1 into this directory instead of printing importfs.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Options mount(8) passes to a helper that mean nothing to us (`-n` no mtab,
/// `-s` sloppy, `-w` read-write); `-r` is read-only.
const HELPER_IGNORED_FLAGS: [&str; 3] = ["-n", "-s", "-w"];

/// Recognise the way mount(8) runs a FUSE helper and rewrite it as
/// `importfs mount MOUNTPOINT -o OPTIONS`.
///
/// `mount -t fuse.importfs none /mnt -o ro,api_key_file=/k` makes
/// mount.fuse3 run `importfs none /mnt -o ro,api_key_file=/k,dev,suid`
/// through `/bin/sh` (the same when installed as `mount.fuse.importfs`, which
/// mount(8) runs directly). The source is ignored (write `none` or
/// `importfs`); an empty source disappears, leaving `importfs /mnt -o ...`.
/// Returns `None` when `argv[1]` is a subcommand or a flag: the normal CLI.
pub fn helper_form(args: &[OsString], subcommands: &[String]) -> Option<Vec<OsString>> {
    let first = args.get(1)?.to_str().unwrap_or("");
    if first.starts_with('-') || subcommands.iter().any(|s| s == first) {
        return None;
    }
    let mut positionals = Vec::new();
    let mut rest: Vec<OsString> = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_str().unwrap_or("");
        if s == "-o" {
            rest.push("-o".into());
            if let Some(v) = it.next() {
                rest.push(v.clone());
            }
        } else if let Some(v) = s.strip_prefix("-o").filter(|v| !v.is_empty()) {
            rest.push("-o".into());
            rest.push(v.into());
        } else if s == "-r" {
            rest.push("-o".into());
            rest.push("ro".into());
        } else if s == "-t" {
            it.next(); // mount.fuse3's `-t fuse.importfs`: we know our type
        } else if HELPER_IGNORED_FLAGS.contains(&s) {
        } else if s.starts_with('-') {
            rest.push(a.clone());
        } else {
            positionals.push(a.clone());
        }
    }
    let mountpoint = match positionals.len() {
        1 => positionals.remove(0),
        2 => positionals.remove(1),
        _ => return None, // let clap explain
    };
    let mut out: Vec<OsString> = vec![args[0].clone(), "mount".into(), mountpoint];
    out.extend(rest);
    Some(out)
}

fn subcommand_names() -> Vec<String> {
    let cmd = Cli::command();
    let mut names: Vec<String> = vec!["help".into()];
    for sc in cmd.get_subcommands() {
        names.push(sc.get_name().to_owned());
        names.extend(sc.get_all_aliases().map(str::to_owned));
    }
    names
}

fn config_command(args: ConfigArgs) -> anyhow::Result<()> {
    let eff = settings::resolve(&args.settings)?;
    print!("{}", eff.render());
    Ok(())
}

fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "importfs", &mut std::io::stdout());
    Ok(())
}

/// The man pages come from the clap definition, so they never drift from `--help`.
fn manpage(args: ManpageArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let cmd = Cli::command();
    match args.dir {
        None => {
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write into {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Parse the command line, run the subcommand, and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    // mount(8) runs helpers with PATH removed from the environment; give
    // ourselves (and fusermount3, and the background child) the usual one.
    // This runs before any thread exists, so changing the environment is safe.
    if std::env::var_os("PATH").is_none_or(|p| p.is_empty()) {
        std::env::set_var(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    let argv = helper_form(&argv, &subcommand_names()).unwrap_or(argv);
    let cli = Cli::parse_from(argv);
    settings::key::take_key_from_env();
    let result = match cli.command {
        Command::Mount(args) => mount::run(args),
        Command::Unmount(args) => manage::unmount(args),
        Command::Status(args) => manage::status(args),
        Command::Cache(args) => cache::run(args),
        Command::Run(args) => run::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
        Command::Config(args) => config_command(args),
        Command::Completions(args) => completions(args),
        Command::Manpage(args) => manpage(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Emulator(args) => emulator::run(args),
        Command::WatchMount(args) => manage::watch_mount(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if logging::logs_to_file() {
                tracing::error!("{e:#}");
            }
            eprintln!("importfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_call_becomes_mount() {
        let subs = subcommand_names();
        let got = helper_form(
            &os(&[
                "importfs",
                "none",
                "/mnt",
                "-o",
                "ro,api_key_file=/k,dev,suid",
            ]),
            &subs,
        );
        assert_eq!(
            got,
            Some(os(&[
                "importfs",
                "mount",
                "/mnt",
                "-o",
                "ro,api_key_file=/k,dev,suid"
            ]))
        );
        let got = helper_form(
            &os(&["mount.fuse.importfs", "/mnt", "-oro", "-n", "-v"]),
            &subs,
        );
        assert_eq!(
            got,
            Some(os(&[
                "mount.fuse.importfs",
                "mount",
                "/mnt",
                "-o",
                "ro",
                "-v"
            ]))
        );
        assert_eq!(
            helper_form(&os(&["importfs", "mount", "/mnt"]), &subs),
            None
        );
        assert_eq!(
            helper_form(&os(&["importfs", "umount", "/mnt"]), &subs),
            None
        );
        assert_eq!(helper_form(&os(&["importfs", "--help"]), &subs), None);
        assert_eq!(helper_form(&os(&["importfs"]), &subs), None);
        assert_eq!(helper_form(&os(&["importfs", "a", "b", "c"]), &subs), None);
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
