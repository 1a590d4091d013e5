//! `importfs emulator`: serve the local Import.io API until interrupted.

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {}

pub fn run(_args: EmulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
