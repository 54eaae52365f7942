//! Errors of the recording runtime.
//!
//! - One public [`Error`] wraps a `#[non_exhaustive]` [`ErrorKind`]; every
//!   message names the file, variable or value at fault.
//! - Errors raised on the profiler's own threads are kept (the first one wins)
//!   and handed to the embedder by [`crate::Profiler::stop`]; they never panic
//!   a thread.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::stats::Stats;

/// An error of the recording runtime.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
    /// The final statistics, on an error returned by
    /// [`crate::Profiler::stop`]: a fault never loses the counts.
    stats: Option<Box<Stats>>,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value (environment variable or builder setting) is
    /// invalid.
    Config {
        /// The variable or setting, e.g. `PULLEY_SAMPLING_FREQ`.
        variable: String,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The output file exists already; pcprof never overwrites a profile.
    OutputExists {
        /// The path that exists.
        path: PathBuf,
    },
    /// An I/O operation on the output failed.
    Io {
        /// The file, or `<writer>` for an embedder-supplied sink.
        path: PathBuf,
        /// What was being done (`create`, `write`, `flush`, `sync`).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A profile record could not be encoded.
    Encode {
        /// Which record.
        record: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// An actor of the runtime failed or could not be reached.
    Actor {
        /// The actor's role (`registry`, `ticker`, `sampler`, `writer`,
        /// `supervisor`).
        actor: &'static str,
        /// What happened.
        reason: String,
    },
    /// The profiler has already stopped, so the request cannot be served.
    Stopped,
    /// An actor did not answer in time (a stalled output sink, a stuck
    /// thread); the profiler went on without it.
    Timeout {
        /// The actor waited for.
        actor: &'static str,
        /// What it was asked (`flush`, `finish`, `stats`, `stop`, ...).
        request: &'static str,
        /// How long it was waited for.
        after: std::time::Duration,
    },
}

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The final statistics (samples taken, written, dropped, ...) when this
    /// error was returned by [`crate::Profiler::stop`].
    pub fn stats(&self) -> Option<&Stats> {
        self.stats.as_deref()
    }

    pub(crate) fn with_stats(mut self, stats: Stats) -> Error {
        self.stats = Some(Box::new(stats));
        self
    }

    pub(crate) fn timeout(
        actor: &'static str,
        request: &'static str,
        after: std::time::Duration,
    ) -> Error {
        ErrorKind::Timeout {
            actor,
            request,
            after,
        }
        .into()
    }

    pub(crate) fn config(
        variable: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Error {
        ErrorKind::Config {
            variable: variable.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
        .into()
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        operation: &'static str,
        source: io::Error,
    ) -> Error {
        ErrorKind::Io {
            path: path.into(),
            operation,
            source,
        }
        .into()
    }

    pub(crate) fn actor(actor: &'static str, reason: impl fmt::Display) -> Error {
        ErrorKind::Actor {
            actor,
            reason: reason.to_string(),
        }
        .into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error {
            kind: Box::new(kind),
            stats: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::Config {
                variable,
                value,
                reason,
            } => write!(f, "invalid {variable}={value:?}: {reason}"),
            ErrorKind::OutputExists { path } => write!(
                f,
                "output file {} exists already; pcprof does not overwrite profiles \
                 (remove it or choose another path)",
                path.display()
            ),
            ErrorKind::Io {
                path,
                operation,
                source,
            } => write!(f, "cannot {operation} {}: {source}", path.display()),
            ErrorKind::Encode { record, reason } => {
                write!(f, "cannot encode {record} record: {reason}")
            }
            ErrorKind::Actor { actor, reason } => write!(f, "{actor} actor: {reason}"),
            ErrorKind::Stopped => write!(f, "the profiler has stopped"),
            ErrorKind::Timeout {
                actor,
                request,
                after,
            } => write!(
                f,
                "{actor} actor: no answer to {request} within {} ms",
                after.as_millis()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Clone for Error {
    /// Errors are kept in statistics and handed out more than once; an I/O
    /// error is cloned by kind and message.
    fn clone(&self) -> Error {
        let kind: ErrorKind = match &*self.kind {
            ErrorKind::Config {
                variable,
                value,
                reason,
            } => ErrorKind::Config {
                variable: variable.clone(),
                value: value.clone(),
                reason: reason.clone(),
            },
            ErrorKind::OutputExists { path } => ErrorKind::OutputExists { path: path.clone() },
            ErrorKind::Io {
                path,
                operation,
                source,
            } => ErrorKind::Io {
                path: path.clone(),
                operation,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            ErrorKind::Encode { record, reason } => ErrorKind::Encode {
                record,
                reason: reason.clone(),
            },
            ErrorKind::Actor { actor, reason } => ErrorKind::Actor {
                actor,
                reason: reason.clone(),
            },
            ErrorKind::Stopped => ErrorKind::Stopped,
            ErrorKind::Timeout {
                actor,
                request,
                after,
            } => ErrorKind::Timeout {
                actor,
                request,
                after: *after,
            },
        };
        Error {
            kind: Box::new(kind),
            stats: self.stats.clone(),
        }
    }
}
