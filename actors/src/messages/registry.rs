//! Messages of the registry, and what they carry.

use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::clock::Nanos;
use crate::error::Error;
use crate::pc::{Activity, PcReader, PcSource, Source};
use crate::stack::StackReader;

/// A PC source on its way to the sampler.
pub struct SourceBox(pub(crate) Source);

impl SourceBox {
    /// Wraps a foreign PC source.
    pub fn foreign(source: impl PcSource) -> SourceBox {
        SourceBox(Source::Foreign(Arc::new(source)))
    }

    /// The same source with a shadow stack, read after each PC.
    pub fn with_stack(self, stack: StackReader) -> SourceBox {
        SourceBox(Source::Stacked(Box::new(self.0), stack))
    }
}

impl From<PcReader> for SourceBox {
    fn from(r: PcReader) -> SourceBox {
        SourceBox(Source::Native(r))
    }
}

impl std::fmt::Debug for SourceBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A live interpreter (the registry forgets an interpreter once it is
/// retired; the file keeps its registration and retirement).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterpreterInfo {
    /// Id in the profile. Ids are reused: a retired interpreter's id goes to
    /// a later registration (see FORMAT.md).
    pub id: u32,
    /// Label given at registration (e.g. the thread's name).
    pub label: Option<String>,
    /// Registration time, in ns since the clock's epoch.
    pub registered_ns: Nanos,
    /// When the sampler found it finished: always `None` in the registry's
    /// answers, which list only live interpreters (kept so that embedders
    /// building the list from a file's records can fill it in).
    pub retired_ns: Option<Nanos>,
    /// The PC it is executing at the moment of the query (`None`: idle or
    /// finished).
    pub current_pc: Option<usize>,
}

/// A registered function (the registry lists only live ones; an unloaded
/// function is forgotten, the file keeps its load and unload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Address of its first byte.
    pub addr: u64,
    /// Name.
    pub name: String,
    /// The bytecode, copied at registration.
    pub code: Arc<[u8]>,
    /// Registration time, in ns since the clock's epoch.
    pub loaded_ns: Nanos,
    /// Unload time, if unloaded (always `None` in the registry's answers,
    /// which list only live functions).
    pub unloaded_ns: Option<Nanos>,
}

/// Counts kept by the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    /// Interpreters registered and not retired.
    pub interpreters_live: u64,
    /// Interpreters retired so far (counted; the registry keeps no other
    /// trace of them).
    pub interpreters_retired: u64,
    /// Functions registered and not unloaded.
    pub functions_live: u64,
    /// Functions unloaded so far (counted only).
    pub functions_unloaded: u64,
}

/// Messages of the registry actor.
#[derive(Debug)]
pub enum RegistryMsg {
    /// A new interpreter; replies with its id when a port is given, or
    /// with [`ErrorKind::Stopped`](crate::ErrorKind::Stopped) when sampling
    /// has ended (a registration that raced the shutdown).
    RegisterInterpreter {
        /// Label, e.g. the thread's name.
        label: Option<String>,
        /// Its PC cell.
        source: SourceBox,
        /// Registration time.
        registered_ns: Nanos,
        /// Where to send the id.
        reply: Option<RpcReplyPort<Result<u32, Error>>>,
    },
    /// A new interpreter on the activity protocol (its cell is read only
    /// while it is entered: `pc.rs`, "The activity protocol"); replies with
    /// its bit in the bitmap, whose [`Activity::id`] is its id, or with an
    /// error as [`RegistryMsg::RegisterInterpreter`]. A source with a shadow
    /// stack has it read after each PC, as there.
    RegisterOnDemand {
        /// Label, e.g. the thread's name.
        label: Option<String>,
        /// Its PC cell: it must read as idle whenever it is not entered.
        source: SourceBox,
        /// Registration time.
        registered_ns: Nanos,
        /// Where to send its bit.
        reply: RpcReplyPort<Result<Activity, Error>>,
    },
    /// The sampler found an interpreter finished.
    InterpreterRetired {
        /// Its id.
        id: u32,
        /// When.
        retired_ns: Nanos,
    },
    /// New bytecode.
    RegisterFunction(FunctionInfo),
    /// Bytecode unloaded.
    UnregisterFunction {
        /// Address of the function.
        addr: u64,
        /// When.
        unloaded_ns: Nanos,
    },
    /// Replies once every earlier message has been handled.
    Barrier(RpcReplyPort<()>),
    /// The live interpreters (registered and not retired), by id.
    GetInterpreters(RpcReplyPort<Vec<InterpreterInfo>>),
    /// The live functions (registered and not unloaded), in registration
    /// order. Unloaded ones are counted ([`RegistryMsg::GetCounts`]) and in
    /// the file, not kept.
    GetFunctions(RpcReplyPort<Vec<FunctionInfo>>),
    /// Counts.
    GetCounts(RpcReplyPort<RegistryCounts>),
}
