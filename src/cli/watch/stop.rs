//! How Ctrl-C and SIGTERM end a watch with 0: a thread of its own waits for
//! either, sets [`STOP`], lets the event being handled finish (it waits for
//! [`GATE`], which the main loop holds only while it handles an event, so
//! a line is never half printed), then exits.

use super::{GATE, GRACE, POLL, STOP};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Start the thread that turns Ctrl-C and SIGTERM into a clean exit 0;
/// returns once the handlers are in place. Without them (they could not
/// be installed) a signal still ends the watch, only not with 0.
pub(super) fn catch_signals() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("watch-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if rt.block_on(wait_for_signal(ready_tx)).is_ok() {
                stop_and_exit();
            }
        });
    if spawned.is_ok() {
        let _ = ready_rx.recv(); // an error: the thread gave up
    }
}

/// Both handlers are installed before `ready` is told (a signal that
/// comes before that still ends the watch, only not with 0).
async fn wait_for_signal(ready: std::sync::mpsc::Sender<()>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let _ = ready.send(());
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// Let the event being handled finish (its command told to stop), then exit
/// 0; give up waiting after a while (a stdout nobody reads).
fn stop_and_exit() -> ! {
    STOP.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + GRACE * 2;
    while Instant::now() < deadline {
        match GATE.try_lock() {
            Ok(_) | Err(std::sync::TryLockError::Poisoned(_)) => {
                let _ = std::io::stdout().flush();
                break;
            }
            Err(std::sync::TryLockError::WouldBlock) => std::thread::sleep(POLL),
        }
    }
    std::process::exit(0)
}
