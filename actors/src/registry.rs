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

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, trace, warn};

use crate::error::ErrorKind;
use crate::format::{FunctionRecord, InterpreterRecord, Record, RetiredRecord, UnloadRecord};
pub use crate::messages::registry::{
    FunctionInfo, InterpreterInfo, RegistryCounts, RegistryMsg, SourceBox,
};
use crate::messages::timing::{TimingMailbox, TimingMsg};
use crate::messages::writer::WriterCmd;
use crate::pc::Source;

/// The registry actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryActor;

/// What the registry starts with.
#[derive(Debug)]
pub struct RegistryArgs {
    pub(crate) timing: TimingMailbox,
    pub(crate) writer: flume::Sender<WriterCmd>,
    pub(crate) instruction_set: Option<std::sync::Arc<dyn crate::isa::InstructionSet>>,
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
    /// The id the next interpreter gets.
    next_id: u32,
    /// The embedder's instruction set and the listings it made.
    listings: crate::isa::Listings,
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
            listings: crate::isa::Listings::new(args.instruction_set),
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
            | RegistryMsg::GetInterpreters(_)
            | RegistryMsg::GetFunctions(_)
            | RegistryMsg::GetCounts(_) => trace!(name: "registry.message", msg = ?msg),
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
                let listing = state.listings.listing(&info.code);
                state.to_writer(Record::Function(FunctionRecord {
                    addr: info.addr,
                    name: info.name.clone(),
                    code: info.code.to_vec(),
                    loaded_ns: info.loaded_ns,
                    listing,
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
            RegistryMsg::GetInterpreters(reply) => {
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
            RegistryMsg::GetFunctions(reply) => {
                let _ = reply.send(state.functions.clone());
            }
            RegistryMsg::GetCounts(reply) => {
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
