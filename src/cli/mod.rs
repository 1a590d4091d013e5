//! The command line: `importfs mount | demo | emulator`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod emulator;

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
    /// Run a local Import.io API server (for tests, demos and benchmarks).
    Emulator(emulator::EmulatorArgs),
}

/// Parse the command line, run the subcommand, and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Emulator(args) => emulator::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("importfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}
