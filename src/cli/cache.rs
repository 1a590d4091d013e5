//! `importfs cache ls|clear`: what the result cache keeps for later mounts,
//! and emptying it.
//!
//! Both work on the folder alone (no API call, no key): `ls` reads each
//! entry's `.meta`; `clear` removes every entry no mount is using (one a
//! live mount holds is locked, and kept), and the folders of mounts whose
//! process is gone.

use crate::cli::settings;
use crate::fs::store;
use anyhow::Result;
use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The cache directory [default: as `importfs mount` would use: the
    /// config file's `cache_dir`, else $XDG_CACHE_HOME/importfs].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: CacheAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum CacheAction {
    /// List the kept result files: size, last use, run and file.
    Ls,
    /// Remove every kept result file no mount is using.
    Clear,
}

pub fn run(args: CacheArgs) -> Result<()> {
    let dir = match args.cache_dir {
        Some(d) => d,
        None => {
            settings::resolve(&settings::SettingsFlags::default())?
                .settings()
                .cache_dir
        }
    };
    let root = dir.join(store::RESULTS_DIR);
    let mut entries = store::entries(&root);
    entries.sort_by_key(|e| std::cmp::Reverse(e.used));
    match args.action {
        CacheAction::Ls => {
            println!(
                "{:>14}  {:<20}  {:<9}  {:<36}  {:<12}  ACCOUNT",
                "BYTES", "LAST USED", "KIND", "RUN", "FILE"
            );
            for e in &entries {
                let (kind, run, file) = match &e.meta {
                    Some(m) => (m.kind.as_str(), m.run.as_str(), m.file.as_str()),
                    None => ("?", "?", "?"),
                };
                println!(
                    "{:>14}  {:<20}  {:<9}  {:<36}  {:<12}  {}",
                    e.bytes,
                    when(e.used),
                    kind,
                    run,
                    file,
                    &e.account[..e.account.len().min(8)]
                );
            }
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            println!(
                "{} file(s), {total} bytes, in {}",
                entries.len(),
                root.display()
            );
        }
        CacheAction::Clear => {
            let (mut removed, mut bytes, mut busy) = (0u64, 0u64, 0u64);
            for e in &entries {
                if store::remove_unused(&e.data, None) {
                    removed += 1;
                    bytes += e.bytes;
                } else {
                    busy += 1;
                }
            }
            crate::fs::data::remove_stale_dirs(&dir);
            println!(
                "removed {removed} file(s), {bytes} bytes, from {}",
                root.display()
            );
            if busy > 0 {
                println!("{busy} file(s) in use by a mount were kept");
            }
        }
    }
    Ok(())
}

/// A time as `2026-12-03 09:41:02` (UTC).
fn when(t: SystemTime) -> String {
    let Ok(d) = t.duration_since(SystemTime::UNIX_EPOCH) else {
        return "-".into();
    };
    let s = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + d).to_string();
    s.trim_end_matches('Z').replace('T', " ")
}
