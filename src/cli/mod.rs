//! The command line: `importfs mount | demo | emulator`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod demo;
pub mod emulator;
pub mod mount;

#[derive(Debug, Parser)]
#[command(
    name = "importfs",
    version,
    about = "Mount an Import.io account as a filesystem"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount an Import.io account (API key from IMPORTIO_API_KEY or --api-key-file).
    Mount(mount::MountArgs),
    /// Start a local emulator with a demo account and mount it in the foreground.
    Demo(demo::DemoArgs),
    /// Run a local Import.io API server (for tests, demos and benchmarks).
    Emulator(emulator::EmulatorArgs),
}

/// Set up tracing: `-v` levels or RUST_LOG, to stderr (or a file).
pub fn init_logging(verbose: u8, default: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => default.unwrap_or("warn"),
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},fuser=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    Ok(())
}

/// Parse the command line, run the subcommand, and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mount(args) => mount::run(args),
        Command::Demo(args) => demo::run(args),

        Command::Emulator(args) => emulator::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("importfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
