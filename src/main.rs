fn main() -> std::process::ExitCode {
    importfs::cli::main()
}
