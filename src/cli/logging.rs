//! Logging for every subcommand: tracing to stderr, or appended to a file
//! for a background mount (whose stderr is that file too).
//!
//! Subtle: once the log is a file, a fatal error is logged there as well
//! as printed, so that the log says why the mount ended; when the log is
//! stderr, logging it too would print it twice. Hence [`logs_to_file`],
//! which `main` asks before printing an error.

use std::path::Path;

/// Set when the log goes to a file: then a fatal error is logged there too,
/// besides stderr (where it would otherwise appear twice).
static LOG_TO_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set up tracing: `-v` levels or RUST_LOG, to stderr.
pub fn init_logging(verbose: u8, default: Option<&str>) -> anyhow::Result<()> {
    init_logging_to(verbose, default, None)
}

/// Set up tracing: `-v` levels or RUST_LOG, to `file` (appended) or stderr.
pub fn init_logging_to(
    verbose: u8,
    default: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => default.unwrap_or("warn"),
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},fuser=warn,hyper=warn,reqwest=warn,h2=warn,rustls=warn,zbus=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    match file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            if builder
                .with_writer(std::sync::Mutex::new(f))
                .try_init()
                .is_ok()
            {
                LOG_TO_FILE.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
    }
    Ok(())
}

/// Whether the log goes to a file (set by [`init_logging_to`]).
pub fn logs_to_file() -> bool {
    LOG_TO_FILE.load(std::sync::atomic::Ordering::Relaxed)
}
