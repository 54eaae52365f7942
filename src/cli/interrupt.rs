//! Ctrl-C and SIGTERM for the recording commands: the first asks the
//! command to stop cleanly (it polls [`Interrupt::received`]), the second
//! exits at once.
//!
//! - Everything happens in the signal handler through `signal-hook`'s
//!   async-signal-safe flag actions: no thread, no allocation.
//! - Per signal, the handlers run in registration order: exit if already
//!   armed, then arm, then record which signal came. So the first signal
//!   only arms and records, and the second finds the flag armed and calls
//!   `_exit(128 + signal)`: whatever the writer had flushed stays on disk,
//!   nothing else runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::signal::{SIGINT, SIGTERM};

/// The signals that stop a recording.
const SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// Handlers of SIGINT and SIGTERM, installed for the life of the process.
pub struct Interrupt {
    received: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers. Until then a signal kills the process as
    /// usual, which is right while nothing has been recorded.
    pub fn install() -> std::io::Result<Interrupt> {
        let armed = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        for signal in SIGNALS {
            signal_hook::flag::register_conditional_shutdown(
                signal,
                exit_status(signal),
                Arc::clone(&armed),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&armed))?;
            // Signal numbers are small and positive.
            signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize)?;
        }
        Ok(Interrupt { received })
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<Signal> {
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            n => Some(Signal(n as i32)),
        }
    }
}

/// A termination signal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    /// Its name, as `kill -l` spells it with the prefix.
    pub fn name(self) -> &'static str {
        match self.0 {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }

    /// The shell's convention for a process ended by it: 128 + its number
    /// (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(self) -> std::process::ExitCode {
        std::process::ExitCode::from(exit_status(self.0) as u8)
    }
}

fn exit_status(signal: i32) -> i32 {
    128 + signal
}
