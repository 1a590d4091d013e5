//! The `importfs` binary. Everything is in the library: `cli::main` parses
//! the command line and runs the subcommand.

fn main() -> std::process::ExitCode {
    importfs::cli::main()
}
