//! Supervision of the profiler's own OS threads (timing and writer).
//!
//! - ractor supervises actors that run on its runtime; the timing and writer
//!   threads are plain OS threads, so they report to the supervisor through
//!   a [`Watch`]: a panic as soon as it is caught, and their exit.
//! - A panic in embedder code (a `PcSource` on the timing thread, a `Write`
//!   sink on the writer thread) is caught where it happens; the thread keeps
//!   its state and keeps answering the shutdown steps, so what was recorded
//!   still reaches the disk and the host never sees the panic.
//! - Depends on nothing else in the crate: the supervisor builds the report
//!   function, the threads only call it.

use std::any::Any;
use std::sync::Arc;

/// What a watched thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadEvent {
    /// A panic was caught; the thread goes on serving the shutdown.
    Panicked(String),
    /// The thread has exited (its last act).
    Exited,
}

/// A thread's line to the supervisor.
#[derive(Clone)]
pub(crate) struct Watch {
    /// The actor the thread hosts (`sampler`, `writer`), named in errors.
    pub(crate) role: &'static str,
    report: Arc<dyn Fn(&'static str, ThreadEvent) + Send + Sync>,
}

impl Watch {
    pub(crate) fn new(
        role: &'static str,
        report: Arc<dyn Fn(&'static str, ThreadEvent) + Send + Sync>,
    ) -> Watch {
        Watch { role, report }
    }

    /// A watch that reports to no one (unit tests).
    #[cfg(test)]
    pub(crate) fn none(role: &'static str) -> Watch {
        Watch::new(role, Arc::new(|_, _| {}))
    }

    pub(crate) fn report(&self, event: ThreadEvent) {
        (self.report)(self.role, event);
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("role", &self.role).finish()
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}
