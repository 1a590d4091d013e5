//! `importfs demo MOUNTPOINT`: the one-command way to see the product.
//!
//! Starts the emulator in-process with the demo account on a free loopback
//! port and a throwaway key, then mounts it in the foreground and prints a
//! short tour. Ctrl-C unmounts and stops both.
//!
//! Subtle: the emulator gets an async runtime of its own, with its own
//! thread, because the mount blocks this thread serving FUSE until it is
//! unmounted; the emulator must answer all that time.

use crate::cli::mount::{mount_foreground, MountArgs};
use crate::cli::settings::Settings;
use crate::emulator::{Config, Dataset, Emulator};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where to mount the demo account (an existing, empty directory; created if missing).
    pub mountpoint: PathBuf,
    /// Seconds a started run takes to finish in the demo account.
    #[arg(long, default_value_t = 5.0)]
    pub run_seconds: f64,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn run(args: DemoArgs) -> Result<()> {
    crate::cli::logging::init_logging(args.verbose, None)?;
    std::fs::create_dir_all(&args.mountpoint)
        .with_context(|| format!("cannot create {}", args.mountpoint.display()))?;
    let key = format!("demo-{:016x}", fastrand::u64(..));
    let emu_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let emu = emu_rt.block_on(Emulator::start(Config {
        api_key: key.clone(),
        dataset: Dataset::Demo,
        run_seconds: args.run_seconds,
        ..Config::default()
    }))?;
    let m = args.mountpoint.display().to_string();
    println!("importfs demo: emulator at {}, mounting on {m}", emu.url());
    println!();
    println!("Try, in another terminal:");
    println!("  ls {m}/extractors/");
    println!("  ls -l {m}/crawlruns/ | head");
    println!("  head {m}/extractors/*/latest/data.csv");
    println!("  cat {m}/extractors/<name>/inputs");
    println!("  python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], encoding=\"utf-8-sig\"))))' {m}/crawlruns/<id>/data.csv");
    println!("  cat {m}/.importfs/stats");
    println!(
        "  tail -f {m}/.importfs/events    # then, elsewhere: touch {m}/extractors/<name>/start"
    );
    println!("  importfs watch {m} --event crawlrun.finished");
    println!();
    println!("Press Ctrl-C to unmount.");
    let margs = MountArgs {
        mountpoint: args.mountpoint.clone(),
        settings: Settings {
            api_url: emu.url(),
            metadata_ttl: Duration::from_secs(2),
            // Runs finish in seconds here: look for them as often.
            poll_interval: Duration::from_secs(2),
            cache_size: 1 << 30,
            ..Settings::default()
        },
        log_file_given: false,
        foreground: true,
        verbose: args.verbose,
        api_timeout: None,
        api_deadline: None,
    };
    let result = mount_foreground(&margs, crate::api::ApiKey::new(key), None);
    emu_rt.block_on(emu.shutdown());
    result
}
