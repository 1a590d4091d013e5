//! Waiting for Ctrl-C or SIGTERM, the two ways a foreground process of
//! ours (a mount, the emulator) is told to stop.
//!
//! Subtle: SIGTERM is what systemd, `kill` and `docker stop` send, so it
//! must mean the same as Ctrl-C; if its handler cannot be installed, Ctrl-C
//! alone still works rather than failing the whole process.

/// Return on the first Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
