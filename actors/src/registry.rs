//! The registry actor: which interpreters and which bytecode exist.
//!
//! - Registering is a non-blocking `cast` from any thread; the registry
//!   assigns interpreter ids, hands PC sources to the sampler and records to
//!   the writer, and answers queries about what is registered.
//! - It is the sequencer of the writer's records: before writing a batch the
//!   writer sends [`RegistryMsg::Barrier`], and since the registry's mailbox
//!   is FIFO every registration made before the batch was sealed reaches the
//!   writer first. So every function record precedes the samples in it.
//! - It keeps only what is live: a retired interpreter and an unloaded
//!   function are forgotten (counted), so its memory follows what exists
//!   now, never what has come and gone. The file keeps the history.
//! - It makes the activity bitmap's chunks (`pc.rs`, "The activity
//!   protocol") as on-demand interpreters need them: an on-demand
//!   interpreter's slot is its id, so a slot goes to another registration
//!   only once the sampler has retired it and cleared its bit.
//! - Interpreter ids are reused, lowest first, so they stay as small as the
//!   number of interpreters alive at once: an id is free once the sampler
//!   has retired its interpreter (it samples it no more), and goes only to a
//!   registration stamped at or after that retirement, so every sample of
//!   the old interpreter is earlier than the new one's `registered_ns` and a
//!   reader tells them apart by time (FORMAT.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, trace, warn};

use crate::clock::Nanos;
use crate::error::{Error, ErrorKind};
use crate::format::{FunctionRecord, InterpreterRecord, Record, RetiredRecord, UnloadRecord};
pub use crate::messages::registry::{
    FunctionInfo, InterpreterInfo, RegistryCounts, RegistryMsg, SourceBox,
};
use crate::messages::timing::{TimingMailbox, TimingMsg};
use crate::messages::writer::WriterCmd;
use crate::pc::{ACTIVITY_CHUNK, Activity, ActivityChunk, Source};

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
    /// The live interpreters, by id.
    interpreters: BTreeMap<u32, InterpreterInfo>,
    /// PC sources of the live interpreters.
    sources: BTreeMap<u32, Source>,
    /// Ids of retired interpreters, free for reuse, with their retirement
    /// time (a registration stamped before it must not take the id).
    free_ids: BTreeMap<u32, Nanos>,
    /// The id after the largest ever given.
    next_id: u32,
    /// Interpreters retired so far.
    retired: u64,
    /// The live functions, by registration number (so listed in
    /// registration order).
    functions: BTreeMap<u64, FunctionInfo>,
    /// Registration numbers of the live functions at each address, latest
    /// last (an unload takes the latest, as before).
    by_addr: HashMap<u64, Vec<u64>>,
    /// The number the next function gets.
    next_function: u64,
    /// Functions unloaded so far.
    unloaded: u64,
    /// The embedder's instruction set and the listings it made.
    listings: crate::isa::Listings,
    /// The activity bitmap's chunks, by number: slot (= id) `s` is in chunk
    /// `s / ACTIVITY_CHUNK`. Shared with the handles and the sampler.
    activity: Vec<Arc<ActivityChunk>>,
}

impl RegistryState {
    fn to_writer(&self, record: Record) {
        if self.writer.send(WriterCmd::Record(record)).is_err() {
            warn!(name: "registry.writer_gone", "writer gone; record not written");
        }
    }

    fn counts(&self) -> RegistryCounts {
        RegistryCounts {
            interpreters_live: self.interpreters.len() as u64,
            interpreters_retired: self.retired,
            functions_live: self.functions.len() as u64,
            functions_unloaded: self.unloaded,
        }
    }

    /// The chunk of the activity bitmap that holds slot `id`, made (with
    /// those before it) when first needed.
    fn chunk_for(&mut self, id: u32) -> Arc<ActivityChunk> {
        let n = id as usize / ACTIVITY_CHUNK;
        while self.activity.len() <= n {
            self.activity.push(Arc::new(ActivityChunk::new()));
        }
        Arc::clone(&self.activity[n])
    }

    /// Gives the interpreter an id (its slot in the activity bitmap, with
    /// the chunk, when `on_demand`), hands its source to the sampler and its
    /// record to the writer. Refused once sampling has ended.
    fn register(
        &mut self,
        label: Option<String>,
        source: Source,
        registered_ns: Nanos,
        on_demand: bool,
    ) -> Result<(u32, Option<Arc<ActivityChunk>>), Error> {
        let Some(id) = self.id_for(registered_ns) else {
            warn!(name: "registry.no_id", label = ?label, "every interpreter id is in use");
            return Err(Error::actor("registry", "every interpreter id is in use"));
        };
        // The sampler first: once the shutdown has drained it, the
        // registration is refused to its caller, never a failure of this
        // actor.
        let chunk = on_demand.then(|| self.chunk_for(id));
        let msg = match &chunk {
            Some(c) => TimingMsg::AddOnDemand {
                id,
                source: source.clone(),
                chunk: Arc::clone(c),
            },
            None => TimingMsg::AddInterpreter {
                id,
                source: source.clone(),
            },
        };
        if self.timing.send(msg).is_err() {
            debug!(name: "registry.refused_interpreter", label = ?label, "sampling has ended");
            return Err(ErrorKind::Stopped.into());
        }
        if self.free_ids.remove(&id).is_none() {
            self.next_id += 1;
        }
        trace!(name: "registry.register_interpreter", interp = id, label = ?label, on_demand);
        // The sampler takes the source between ticks, after this handler
        // has queued the record for the writer; the writer passes a barrier
        // through this mailbox before each batch, so the record precedes
        // every sample of this interpreter.
        self.to_writer(Record::Interpreter(InterpreterRecord {
            id,
            label: label.clone(),
            registered_ns,
        }));
        self.interpreters.insert(
            id,
            InterpreterInfo {
                id,
                label,
                registered_ns,
                retired_ns: None,
                current_pc: None,
            },
        );
        self.sources.insert(id, source);
        Ok((id, chunk))
    }

    /// The lowest free id retired at or before `registered_ns`, else a new
    /// one. The scan stops at the first eligible id: retirements are stamped
    /// by the sampler long before most registrations, so it is almost
    /// always the first.
    fn id_for(&self, registered_ns: Nanos) -> Option<u32> {
        match self
            .free_ids
            .iter()
            .find(|&(_, &retired_ns)| retired_ns <= registered_ns)
        {
            Some((&id, _)) => Some(id),
            None => (self.next_id < u32::MAX).then_some(self.next_id),
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
            free_ids: BTreeMap::new(),
            next_id: 0,
            retired: 0,
            functions: BTreeMap::new(),
            by_addr: HashMap::new(),
            next_function: 0,
            unloaded: 0,
            listings: crate::isa::Listings::new(args.instruction_set),
            activity: Vec::new(),
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
                let id = state.register(label, source.0, registered_ns, false);
                if let Some(reply) = reply {
                    let _ = reply.send(id.map(|(id, _)| id));
                }
            }
            RegistryMsg::RegisterOnDemand {
                label,
                source,
                registered_ns,
                reply,
            } => {
                let registered = state.register(label, source.0, registered_ns, true);
                let _ = reply.send(registered.and_then(|(id, chunk)| {
                    chunk
                        .map(|c| Activity::new(c, id))
                        .ok_or_else(|| Error::actor("registry", "no activity bit was made"))
                }));
            }
            RegistryMsg::InterpreterRetired { id, retired_ns } => {
                trace!(name: "registry.retire_interpreter", interp = id);
                // The sampler sends this after removing the interpreter: it
                // is never sampled again, so its id is free from now.
                if state.interpreters.remove(&id).is_some() {
                    state.retired += 1;
                    state.free_ids.insert(id, retired_ns);
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
                let n = state.next_function;
                state.next_function += 1;
                state.by_addr.entry(info.addr).or_default().push(n);
                state.functions.insert(n, info);
            }
            RegistryMsg::UnregisterFunction { addr, unloaded_ns } => {
                let live = match state.by_addr.get_mut(&addr) {
                    Some(ns) => {
                        let n = ns.pop();
                        if ns.is_empty() {
                            state.by_addr.remove(&addr);
                        }
                        n
                    }
                    None => None,
                };
                match live.and_then(|n| state.functions.remove(&n)) {
                    Some(f) => {
                        trace!(name: "registry.unregister_function", addr, name = %f.name);
                        state.unloaded += 1;
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
                let _ = reply.send(state.functions.values().cloned().collect());
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
