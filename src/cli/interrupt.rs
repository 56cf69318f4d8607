//! Ctrl-C for the offline commands (`detect`, `bench`): the first SIGINT or SIGTERM
//! asks the command to stop between frames (what was written so far is flushed and
//! valid); if it does not get there within [`GRACE`] — a read or decode that never
//! returns — or a second signal comes, the process exits at once with status 130.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

/// How long after the signal the command may take to stop by itself.
pub const GRACE: Duration = Duration::from_secs(3);

static ASKED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // only async-signal-safe work here
    ASKED.store(true, Ordering::SeqCst);
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // SAFETY: _exit is async-signal-safe
        unsafe { libc::_exit(130) };
    }
}

/// Installs the handler (once) and the watchdog that ends a command that does not
/// stop within the grace time.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installing a handler that only touches atomics and calls _exit.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
        let _ = std::thread::Builder::new()
            .name("interrupt".into())
            .spawn(|| loop {
                if ASKED.load(Ordering::SeqCst) {
                    std::thread::sleep(GRACE);
                    eprintln!("gridwatch: still busy {GRACE:?} after the interrupt (a read or decode that does not return?); exiting now");
                    std::process::exit(130);
                }
                std::thread::sleep(Duration::from_millis(50));
            });
    });
}

/// Whether the user asked to stop.
pub fn asked() -> bool {
    ASKED.load(Ordering::SeqCst)
}

/// An error for a command that stopped because it was asked to.
#[derive(Debug, thiserror::Error)]
#[error("interrupted{0}")]
pub struct Interrupted(pub String);
