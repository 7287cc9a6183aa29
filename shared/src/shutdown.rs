//! SIGTERM / SIGINT handling (nix). A stage polls [`requested`] in its loop and returns
//! normally, so its iceoryx2 ports and node are dropped and leave no stale resources.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    // Only an atomic store: async-signal-safe.
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGTERM and SIGINT.
pub fn install() -> nix::Result<()> {
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe, and
        // it does not replace a handler that other code relies on (we install it at start).
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(())
}

/// Whether a termination signal arrived (or [`request`] was called).
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Requests shutdown from inside the process (control request `stop`, tests).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}
