//! The registry actor: which interpreters and which bytecode exist.
//!
//! - Registering is a non-blocking `cast` from any thread; the registry
//!   assigns interpreter ids, hands PC sources to the sampler and records to
//!   the writer, and answers queries about what is registered.
//! - It is the sequencer of the writer's records: before writing a batch the
//!   writer sends [`RegistryMsg::Barrier`], and since the registry's mailbox
//!   is FIFO every registration made before the batch was sealed reaches the
//!   writer first. So every function record precedes the samples in it.
//! - Unloaded functions stay known (with their unload time): a later function
//!   may reuse the address, and samples resolve by time.

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tracing::{debug, trace, warn};

use crate::clock::Nanos;
use crate::error::{Error, ErrorKind};
use crate::format::{FunctionRecord, InterpreterRecord, Record, RetiredRecord, UnloadRecord};
use crate::pc::{PcReader, PcSource, Source};
use crate::timing::{TimingMailbox, TimingMsg};
use crate::writer::WriterCmd;

/// A PC source on its way to the sampler.
pub struct SourceBox(pub(crate) Source);

impl SourceBox {
    /// Wraps a foreign PC source.
    pub fn foreign(source: impl PcSource) -> SourceBox {
        SourceBox(Source::Foreign(Arc::new(source)))
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

/// A registered interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterpreterInfo {
    /// Id in the profile.
    pub id: u32,
    /// Label given at registration (e.g. the thread's name).
    pub label: Option<String>,
    /// Registration time, in ns since the clock's epoch.
    pub registered_ns: Nanos,
    /// When the sampler found it finished.
    pub retired_ns: Option<Nanos>,
    /// The PC it is executing at the moment of the query (`None`: idle or
    /// finished).
    pub current_pc: Option<usize>,
}

/// A registered function.
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
    /// Unload time, if unloaded.
    pub unloaded_ns: Option<Nanos>,
}

/// Counts kept by the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    /// Interpreters registered and not retired.
    pub interpreters_live: u64,
    /// Interpreters retired.
    pub interpreters_retired: u64,
    /// Functions registered and not unloaded.
    pub functions_live: u64,
    /// Functions unloaded.
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
    /// All interpreters ever registered.
    ListInterpreters(RpcReplyPort<Vec<InterpreterInfo>>),
    /// All functions ever registered (unloaded ones too).
    ListFunctions(RpcReplyPort<Vec<FunctionInfo>>),
    /// Counts.
    Counts(RpcReplyPort<RegistryCounts>),
}

/// The registry actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryActor;

/// What the registry starts with.
#[derive(Debug)]
pub struct RegistryArgs {
    pub(crate) timing: TimingMailbox,
    pub(crate) writer: flume::Sender<WriterCmd>,
}

/// State of the registry actor.
#[derive(Debug)]
pub struct RegistryState {
    /// Sends PC sources to the sampler.
    timing: TimingMailbox,
    /// Sends records to the writer.
    writer: flume::Sender<WriterCmd>,
    /// Every interpreter, by id.
    interpreters: BTreeMap<u32, InterpreterInfo>,
    /// PC sources of the live interpreters (dropped at retirement).
    sources: BTreeMap<u32, Source>,
    /// Every function, in registration order.
    functions: Vec<FunctionInfo>,
    next_id: u32,
}

impl RegistryState {
    fn to_writer(&self, record: Record) {
        if self.writer.send(WriterCmd::Record(record)).is_err() {
            warn!(name: "registry.writer_gone", "writer gone; record not written");
        }
    }

    fn counts(&self) -> RegistryCounts {
        let retired = self
            .interpreters
            .values()
            .filter(|i| i.retired_ns.is_some())
            .count() as u64;
        let unloaded = self
            .functions
            .iter()
            .filter(|f| f.unloaded_ns.is_some())
            .count() as u64;
        RegistryCounts {
            interpreters_live: self.interpreters.len() as u64 - retired,
            interpreters_retired: retired,
            functions_live: self.functions.len() as u64 - unloaded,
            functions_unloaded: unloaded,
        }
    }
}

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RegistryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.timing.send(TimingMsg::SetRegistry(myself))?;
        debug!(name: "registry.started", "registry started");
        Ok(RegistryState {
            timing: args.timing,
            writer: args.writer,
            interpreters: BTreeMap::new(),
            sources: BTreeMap::new(),
            functions: Vec::new(),
            next_id: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Barrier(_)
            | RegistryMsg::ListInterpreters(_)
            | RegistryMsg::ListFunctions(_)
            | RegistryMsg::Counts(_) => trace!(name: "registry.message", msg = ?msg),
            _ => {}
        }
        match msg {
            RegistryMsg::RegisterInterpreter {
                label,
                source,
                registered_ns,
                reply,
            } => {
                // The sampler first: once the shutdown has drained it, the
                // registration is refused to its caller, never a failure of
                // this actor.
                let id = state.next_id;
                if state
                    .timing
                    .send(TimingMsg::AddInterpreter {
                        id,
                        source: source.0.clone(),
                    })
                    .is_err()
                {
                    debug!(name: "registry.refused_interpreter", label = ?label, "sampling has ended");
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(ErrorKind::Stopped.into()));
                    }
                    return Ok(());
                }
                state.next_id += 1;
                trace!(name: "registry.register_interpreter", interp = id, label = ?label);
                // The sampler takes the source between ticks, after this
                // handler has queued the record for the writer; the writer
                // passes a barrier through this mailbox before each batch,
                // so the record precedes every sample of this interpreter.
                state.to_writer(Record::Interpreter(InterpreterRecord {
                    id,
                    label: label.clone(),
                    registered_ns,
                }));
                state.interpreters.insert(
                    id,
                    InterpreterInfo {
                        id,
                        label,
                        registered_ns,
                        retired_ns: None,
                        current_pc: None,
                    },
                );
                state.sources.insert(id, source.0);
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(id));
                }
            }
            RegistryMsg::InterpreterRetired { id, retired_ns } => {
                trace!(name: "registry.retire_interpreter", interp = id);
                if let Some(info) = state.interpreters.get_mut(&id) {
                    info.retired_ns = Some(retired_ns);
                }
                state.sources.remove(&id);
                state.to_writer(Record::Retired(RetiredRecord { id, retired_ns }));
            }
            RegistryMsg::RegisterFunction(info) => {
                trace!(name: "registry.register_function", addr = info.addr, name = %info.name, len = info.code.len());
                state.to_writer(Record::Function(FunctionRecord {
                    addr: info.addr,
                    name: info.name.clone(),
                    code: info.code.to_vec(),
                    loaded_ns: info.loaded_ns,
                }));
                state.functions.push(info);
            }
            RegistryMsg::UnregisterFunction { addr, unloaded_ns } => {
                let live = state
                    .functions
                    .iter_mut()
                    .rev()
                    .find(|f| f.addr == addr && f.unloaded_ns.is_none());
                match live {
                    Some(f) => {
                        trace!(name: "registry.unregister_function", addr, name = %f.name);
                        f.unloaded_ns = Some(unloaded_ns);
                        state.to_writer(Record::Unload(UnloadRecord { addr, unloaded_ns }));
                    }
                    None => {
                        warn!(name: "registry.unknown_unload", addr, "no live function at this address");
                    }
                }
            }
            RegistryMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
            RegistryMsg::ListInterpreters(reply) => {
                let list = state
                    .interpreters
                    .values()
                    .map(|i| InterpreterInfo {
                        current_pc: state.sources.get(&i.id).and_then(Source::pc),
                        ..i.clone()
                    })
                    .collect();
                let _ = reply.send(list);
            }
            RegistryMsg::ListFunctions(reply) => {
                let _ = reply.send(state.functions.clone());
            }
            RegistryMsg::Counts(reply) => {
                let _ = reply.send(state.counts());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        debug!(
            name: "registry.stopped",
            interpreters = state.interpreters.len(),
            functions = state.functions.len()
        );
        Ok(())
    }
}
